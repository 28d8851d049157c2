"""Measuring servers from the outside: the pieces `genloop bench`, the c10k demo and bench/ share.

- `children`: servers and clients in processes of their own (the READY handshake, CPU pinning, stopping, the file limit);
- `procfs`: what /proc says about a process tree (memory, threads, CPU time) and `Peak`, which samples it under load;
- `wire`: the request a load generator sends and how it knows an answer is whole;
- `clients`: running wrk or `loadgen` and reading what they report;
- `loadgen`: the HTTP/echo load generator on genloop itself;
- `hold`: N connections held open on one server, what each costs (the c10k figures);
- `machine`: what the figures were measured on.
"""
