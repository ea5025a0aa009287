"""imgen: images from a prompt, on the command line."""

__version__ = "0.1.0"
