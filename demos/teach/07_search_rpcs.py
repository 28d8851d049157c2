"""07 · the search handler's three RPCs: code that reads like blocking calls, and never blocks.

    genloop step 07            (or: python demos/teach/07_search_rpcs.py)

What to watch:
- Three tiny msgpack-rpc backends (users, products, stock) listen on
  127.0.0.1; `search` calls them in turn, each with `yield from client.call(...)`.
- Type `b search` then `c`: the stepper stops each time the handler runs.
  Each call parks `search` ("waits for an rpc answer") while the client's
  writer task sends the request and the backend's reader and method tasks
  answer it; the reply wakes `search` where it left off, on the next line.
- The I/O waits column: nine sockets, no thread each: three listeners
  (`users-accept :PORT` and its two siblings) and a reader at both ends of each of the three connections.
"""
from genloop import rpc
from genloop.kernel import run, sleep, spawn

USERS = {7: {"name": "ada", "country": "NL"}}
PRODUCTS = [{"id": 1, "name": "red kettle", "country": "NL"},
            {"id": 2, "name": "blue kettle", "country": "NL"},
            {"id": 3, "name": "kettle descaler", "country": "DE"},
            {"id": 4, "name": "green kettle", "country": "NL"}]
STOCK = {1: 3, 2: 0, 3: 12, 4: 1}


def get_user_info(user_id):
    yield from sleep(0.01)                      # a database lookup
    return USERS[user_id]


def search_products(query, country):
    yield from sleep(0.01)
    return [p for p in PRODUCTS if query in p["name"] and p["country"] == country]


def get_stock(ids):
    yield from sleep(0.01)
    return [STOCK[i] for i in ids]


BACKENDS = [("users", "GetUserInfo", get_user_info),
            ("products", "SearchProducts", search_products),
            ("stock", "GetStock", get_stock)]


def search(users, products, stock, user_id, query):
    """The article's handler: three calls in turn, each a `yield from` that parks only this task."""
    user = yield from users.call("GetUserInfo", user_id)
    found = yield from products.call("SearchProducts", query, user["country"])
    counts = yield from stock.call("GetStock", [p["id"] for p in found])
    return [p["name"] for p, n in zip(found, counts) if n > 0]


def main():
    servers, clients = [], []
    try:
        for name, method, fn in BACKENDS:
            server = rpc.Server(name=name)
            server.register(method, fn)
            tcp = yield from server.start("127.0.0.1", 0)
            servers.append(server)
            clients.append((yield from rpc.connect("127.0.0.1", tcp.port)))
        handler = yield from spawn(search, *clients, 7, "kettle", name="search")
        return (yield from handler.join())
    finally:
        for client in clients:
            client.close()
        for server in servers:
            yield from server.shutdown()


if __name__ == "__main__":
    print(run(main))
