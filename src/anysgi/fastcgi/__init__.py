"""FastCGI for anysgi.

:mod:`anysgi.fastcgi.protocol` is the sans-IO FastCGI 1.0 codec: it turns bytes into events and
events into bytes, and knows nothing about sockets or event loops. The server and the client
that drive it over real connections live next to it.
"""
