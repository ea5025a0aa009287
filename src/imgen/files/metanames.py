"""The names imgen's metadata is written (files/metadata.py) and read (files/metaread.py) under:
XMP namespaces, the keys and signatures that mark a packet, and the most metadata a file is read for."""

from __future__ import annotations

XMP_NS = "https://imgen.invalid/ns/1.0/"
MAX_METADATA = 4 << 20

XMP_SIG = b"http://ns.adobe.com/xap/1.0/\0"
PNG_XMP_KEY = b"XML:com.adobe.xmp"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
NS = {
    "dc": "http://purl.org/dc/elements/1.1/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "exif": "http://ns.adobe.com/exif/1.0/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "imgen": XMP_NS,
}
