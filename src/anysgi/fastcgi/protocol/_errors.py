"""The two-sided error model: who broke the protocol, us or the peer?"""

from __future__ import annotations

__all__ = ("LocalProtocolError", "ProtocolError", "RemoteProtocolError")


class ProtocolError(Exception):
    """Base class of the codec's errors: someone broke the FastCGI protocol.

    Catch this to handle both kinds at once; catch a subclass to know who was at fault.
    """


class LocalProtocolError(ProtocolError):
    """We tried to break the protocol: :meth:`~anysgi.fastcgi.protocol.Connection.send` was
    given an event that is not valid now (wrong side, unknown or inactive request id, out of
    order, stream already ended), or the connection was misused.

    Nothing was changed: the connection is still usable, as if the call had not happened.
    """


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol: the bytes given to
    :meth:`~anysgi.fastcgi.protocol.Connection.receive_data` are not valid FastCGI here.

    The connection is dead afterwards: every later
    :meth:`~anysgi.fastcgi.protocol.Connection.next_event` raises the same error again. The
    driver should close the transport; FastCGI has no way to report a connection-level error
    to the peer.
    """
