"""Wire values of the FastCGI 1.0 specification (Mark R. Brown, Open Market, 29 April 1996).

Section numbers in this package's comments ("Spec 3.3") refer to that document; section 8,
"Types and Constants", is where every value below comes from.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = (
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
    "ProtocolStatus",
    "RecordType",
    "Role",
)

#: File descriptor of the listening socket when the web server spawns the application (Apache
#: mod_fcgid, lighttpd). Spec 3.2: "A FastCGI application calls accept() on the socket
#: referred to by file descriptor FCGI_LISTENSOCK_FILENO to accept a new transport connection."
FCGI_LISTENSOCK_FILENO: Final = 0

#: The only protocol version there is; the first byte of every record header.
FCGI_VERSION_1: Final = 1

#: Length of the fixed record header. Spec 8: "Future versions of the protocol will not
#: reduce this number."
HEADER_LENGTH: Final = 8

#: Spec 3.3: "contentData: Between 0 and 65535 bytes of data". Longer streams take several
#: records.
MAX_CONTENT_LENGTH: Final = 65535

#: Spec 3.3: "paddingData: Between 0 and 255 bytes of data, which are ignored."
MAX_PADDING_LENGTH: Final = 255

#: Request ids are two bytes (requestIdB1, requestIdB0).
MAX_REQUEST_ID: Final = 65535

#: Spec 3.3: "Management records have a requestId value of zero, also called the null
#: request ID."
FCGI_NULL_REQUEST_ID: Final = 0

#: Spec 3.4: a four-byte length keeps its top bit as the encoding marker, so a name or value
#: holds at most 2**31 - 1 bytes.
MAX_PAIR_LENGTH: Final = 0x7FFF_FFFF

#: Bit of the BEGIN_REQUEST flags. Spec 5.1: "If zero, the application closes the connection
#: after responding to this request."
FCGI_KEEP_CONN: Final = 1

#: GET_VALUES variable: how many transport connections the application accepts at once.
FCGI_MAX_CONNS: Final = b"FCGI_MAX_CONNS"
#: GET_VALUES variable: how many requests the application accepts at once.
FCGI_MAX_REQS: Final = b"FCGI_MAX_REQS"
#: GET_VALUES variable: ``b"1"`` if the application multiplexes requests on one connection.
FCGI_MPXS_CONNS: Final = b"FCGI_MPXS_CONNS"


class RecordType(enum.IntEnum):
    """The ``type`` byte of a record header (spec 3.3, values from spec 8).

    Types 1 to 8 are application records (a non-zero request id); 9 to 11 are management
    records (request id 0). Spec 4.2 reserves every other value for future management
    records, which an application answers with :attr:`UNKNOWN_TYPE`.
    """

    #: Web server -> application: starts a request (spec 5.1).
    BEGIN_REQUEST = 1
    #: Web server -> application: the HTTP client went away (spec 5.4).
    ABORT_REQUEST = 2
    #: Application -> web server: the request is over (spec 5.5).
    END_REQUEST = 3
    #: Web server -> application: stream of name-value pairs, the CGI environment (spec 5.2).
    PARAMS = 4
    #: Web server -> application: stream, the request body (spec 5.3).
    STDIN = 5
    #: Application -> web server: stream, the CGI response (spec 5.3).
    STDOUT = 6
    #: Application -> web server: stream, error text for the web server's log (spec 5.3).
    STDERR = 7
    #: Web server -> application: stream, the file a Filter filters (spec 5.3, 6.4).
    DATA = 8
    #: Web server -> application, management: asks for variables (spec 4.1).
    GET_VALUES = 9
    #: Application -> web server, management: the variables it knows (spec 4.1).
    GET_VALUES_RESULT = 10
    #: Application -> web server, management: "I do not know management type T" (spec 4.2).
    UNKNOWN_TYPE = 11


class Role(enum.IntEnum):
    """The role the web server asks the application to play (BEGIN_REQUEST, spec 5.1, 6)."""

    #: An HTTP request in, an HTTP response out: CGI/1.1's job (spec 6.2).
    RESPONDER = 1
    #: An access decision: 200 lets the request through (spec 6.3).
    AUTHORIZER = 2
    #: A Responder that also reads a file on the DATA stream (spec 6.4).
    FILTER = 3


class ProtocolStatus(enum.IntEnum):
    """The ``protocolStatus`` byte of END_REQUEST (spec 5.5)."""

    #: "normal end of request."
    REQUEST_COMPLETE = 0
    #: "rejecting a new request ... concurrent requests over one connection to an
    #: application that is designed to process one request at a time per connection."
    CANT_MPX_CONN = 1
    #: "rejecting a new request ... the application runs out of some resource".
    OVERLOADED = 2
    #: "rejecting a new request ... the Web server has specified a role that is unknown to
    #: the application."
    UNKNOWN_ROLE = 3
