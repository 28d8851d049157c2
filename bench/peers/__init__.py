"""Peer servers for the HTTP and echo benchmarks, one I/O style per module.

Contract, shared by every style in `bench.servers.STYLES`:

    python -m bench.peers.NAME --port P [--host H] [--mode http|echo]

binds (port 0 picks a free port), prints `READY <port>` on stdout once it
listens, and serves until killed. Every peer does the same work per request
(`bench.peers.work`), so the rows compare I/O styles, not parsers.
"""
