"""What an RPC call can raise besides the remote method's own error."""


class RPCError(Exception):
    """Base class of the rpc layer's errors."""


class RemoteError(RPCError):
    """The remote method failed; ``error`` is the error object it sent.

    genloop servers send ``[exception type name, message]``; other peers may
    send anything msgpack can carry.
    """

    def __init__(self, error, method=None):
        self.error = error
        self.method = method
        if isinstance(error, (list, tuple)) and len(error) == 2:
            text = f"{error[0]}: {error[1]}"
        else:
            text = repr(error)
        super().__init__(f"{method}: {text}" if method else text)

    @property
    def type(self):
        """The remote exception's type name, when the peer sent one."""
        return self.error[0] if isinstance(self.error, (list, tuple)) and self.error else None


class ConnectionLost(RPCError, ConnectionError):
    """The connection dropped (or was closed) with this call in flight."""
