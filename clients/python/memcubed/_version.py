"""The SDK version, sent in the User-Agent so server logs show which client wrote."""

__version__ = "0.1.0"
