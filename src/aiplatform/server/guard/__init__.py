"""What a web page may not do to the server: reach it under a name it was not given (DNS
rebinding), write to it from another site, or send it JSON as a simple request.

- :mod:`.hosts`: the ``Host`` names the server answers to.
- :mod:`.origins`: the server's own origin, and the origins allowed to call it (CORS).
- :mod:`.middleware`: the ASGI middleware that applies both, first in the chain.
- :mod:`.json_body`: JSON bodies must come as ``application/json``.
"""
