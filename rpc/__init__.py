"""genloop's msgpack-rpc: a sans-IO protocol, a multiplexed client, a server."""
from .client import BlockingClient, Client, connect
from .errors import ConnectionLost, RemoteError, RPCError
from .peer import Peer, Registry
from .protocol import Connection, NotificationMessage, ProtocolError, RequestMessage, ResponseMessage
from .reconnect import Backoff, BlockingPool, ReconnectingClient
from .server import Server

__all__ = ["connect", "Client", "BlockingClient", "Server", "Peer", "Registry", "RemoteError",
           "ConnectionLost", "RPCError", "ProtocolError", "Connection", "RequestMessage",
           "ResponseMessage", "NotificationMessage", "ReconnectingClient", "BlockingPool", "Backoff"]
