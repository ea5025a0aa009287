"""Files on disk: the verified atomic writer, safe and unique names, image-type sniffing,
streaming base64 decoding, and the reference images read from disk."""
