"""Wire types: msgspec Structs for every request and response the server speaks.

Leaf modules: they import msgspec and the standard library only, so clients, the server and the
remote adapter share them without pulling in any engine.
"""
