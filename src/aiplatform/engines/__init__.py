"""Engines: the contract (:mod:`.base`), the in-process adapter (:mod:`.local`) and the kinds."""
