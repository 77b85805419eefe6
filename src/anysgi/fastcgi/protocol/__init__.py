"""A sans-IO FastCGI 1.0 codec: bytes in, events out; events in, bytes out.

Strict and total: every rule of the FastCGI 1.0 specification that a peer can break is
checked, with explicit limits, and any input either gives events or raises
:class:`RemoteProtocolError`. It imports only the standard library and does no I/O, so the
same code serves a FastCGI server (:data:`SERVER`, the application's end) and a FastCGI
client (:data:`CLIENT`, the web server's end) on any event loop, or none.

See :doc:`/reference/protocol` for a tour.
"""

from __future__ import annotations

from ._connection import DEFAULT_MAX_CONCURRENT_REQUESTS as DEFAULT_MAX_CONCURRENT_REQUESTS
from ._connection import DEFAULT_MAX_NAME_LENGTH as DEFAULT_MAX_NAME_LENGTH
from ._connection import DEFAULT_MAX_PARAMS_SIZE as DEFAULT_MAX_PARAMS_SIZE
from ._connection import DEFAULT_MAX_VALUE_LENGTH as DEFAULT_MAX_VALUE_LENGTH
from ._connection import NEED_DATA as NEED_DATA
from ._connection import Connection as Connection
from ._connection import NeedData as NeedData
from ._constants import FCGI_KEEP_CONN as FCGI_KEEP_CONN
from ._constants import FCGI_LISTENSOCK_FILENO as FCGI_LISTENSOCK_FILENO
from ._constants import FCGI_MAX_CONNS as FCGI_MAX_CONNS
from ._constants import FCGI_MAX_REQS as FCGI_MAX_REQS
from ._constants import FCGI_MPXS_CONNS as FCGI_MPXS_CONNS
from ._constants import FCGI_NULL_REQUEST_ID as FCGI_NULL_REQUEST_ID
from ._constants import FCGI_VERSION_1 as FCGI_VERSION_1
from ._constants import HEADER_LENGTH as HEADER_LENGTH
from ._constants import MAX_CONTENT_LENGTH as MAX_CONTENT_LENGTH
from ._constants import MAX_PADDING_LENGTH as MAX_PADDING_LENGTH
from ._constants import MAX_PAIR_LENGTH as MAX_PAIR_LENGTH
from ._constants import MAX_REQUEST_ID as MAX_REQUEST_ID
from ._constants import ProtocolStatus as ProtocolStatus
from ._constants import RecordType as RecordType
from ._constants import Role as Role
from ._errors import LocalProtocolError as LocalProtocolError
from ._errors import ProtocolError as ProtocolError
from ._errors import RemoteProtocolError as RemoteProtocolError
from ._events import AbortRequest as AbortRequest
from ._events import BeginRequest as BeginRequest
from ._events import ConnectionClosed as ConnectionClosed
from ._events import Data as Data
from ._events import DataEnd as DataEnd
from ._events import EndRequest as EndRequest
from ._events import Event as Event
from ._events import GetValues as GetValues
from ._events import GetValuesResult as GetValuesResult
from ._events import Params as Params
from ._events import Stderr as Stderr
from ._events import StderrEnd as StderrEnd
from ._events import Stdin as Stdin
from ._events import StdinEnd as StdinEnd
from ._events import Stdout as Stdout
from ._events import StdoutEnd as StdoutEnd
from ._events import UnknownManagementRecord as UnknownManagementRecord
from ._events import UnknownType as UnknownType
from ._state import CLIENT as CLIENT
from ._state import SERVER as SERVER
from ._state import RequestState as RequestState
from ._state import Side as Side
from ._state import State as State

__all__ = (
    "CLIENT",
    "DEFAULT_MAX_CONCURRENT_REQUESTS",
    "DEFAULT_MAX_NAME_LENGTH",
    "DEFAULT_MAX_PARAMS_SIZE",
    "DEFAULT_MAX_VALUE_LENGTH",
    "FCGI_KEEP_CONN",
    "FCGI_LISTENSOCK_FILENO",
    "FCGI_MAX_CONNS",
    "FCGI_MAX_REQS",
    "FCGI_MPXS_CONNS",
    "FCGI_NULL_REQUEST_ID",
    "FCGI_VERSION_1",
    "HEADER_LENGTH",
    "MAX_CONTENT_LENGTH",
    "MAX_PADDING_LENGTH",
    "MAX_PAIR_LENGTH",
    "MAX_REQUEST_ID",
    "NEED_DATA",
    "SERVER",
    "AbortRequest",
    "BeginRequest",
    "Connection",
    "ConnectionClosed",
    "Data",
    "DataEnd",
    "EndRequest",
    "Event",
    "GetValues",
    "GetValuesResult",
    "LocalProtocolError",
    "NeedData",
    "Params",
    "ProtocolError",
    "ProtocolStatus",
    "RecordType",
    "RemoteProtocolError",
    "RequestState",
    "Role",
    "Side",
    "State",
    "Stderr",
    "StderrEnd",
    "Stdin",
    "StdinEnd",
    "Stdout",
    "StdoutEnd",
    "UnknownManagementRecord",
    "UnknownType",
)
