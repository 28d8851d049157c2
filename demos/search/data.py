"""The search demo's data: a real SQLite database, generated once, read from IO threads.

The backends need data worth querying, and a database call is the classic
blocking call a coroutine must not make on Main: each query runs through
`with_context(Dispatchers.IO, ...)` on a connection from `Catalog`'s pool.

The data is generated from a fixed seed, so every run (and every machine)
has the same users, products and stock, and the same query gives the same
answer. Product names are three words ("rustic oak chair"); `product_words`
indexes every word by country and price, so a search reads only the rows it
returns. Generating the default size takes about a second; the file is
cached and reused while its parameters match.
"""
import os
import queue
import random
import sqlite3
from pathlib import Path

#: The article's sizes; tests pass smaller ones.
USERS = 10_000
PRODUCTS = 50_000
SEED = 2024
#: Bump when the schema or the generator changes: cached files are then rebuilt.
VERSION = 1

COUNTRIES = ("DE", "ES", "FR", "IT", "NL", "PL", "PT", "SE")
FIRST = ("Ada", "Alan", "Barbara", "Claude", "Donald", "Edsger", "Frances", "Grace", "Ken", "Leslie",
         "Margaret", "Niklaus", "Radia", "Robin", "Shafi", "Tony")
LAST = ("Allen", "Dijkstra", "Hamilton", "Hoare", "Hopper", "Kay", "Knuth", "Lamport", "Liskov",
        "Milner", "Perlman", "Ritchie", "Shannon", "Thompson", "Turing", "Wirth")
ADJECTIVES = ("rustic", "sleek", "compact", "vintage", "modern", "sturdy", "light", "classic",
              "folding", "smart", "quiet", "tiny", "grand", "soft", "bright", "handmade")
MATERIALS = ("oak", "steel", "wool", "glass", "bamboo", "copper", "linen", "marble", "cotton",
             "walnut", "leather", "ceramic")
NOUNS = ("chair", "lamp", "table", "kettle", "shelf", "rug", "mug", "desk", "clock", "vase",
         "stool", "bench", "mirror", "blanket", "teapot", "bowl", "sofa", "frame", "basket", "bed")
#: Share of products with nothing in stock: the front leaves them out of its answer.
OUT_OF_STOCK = 0.3
MAX_QUANTITY = 50

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT NOT NULL);
CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL NOT NULL,
                       country TEXT NOT NULL);
CREATE TABLE product_words (word TEXT, country TEXT, price REAL, product_id INTEGER,
                            PRIMARY KEY (word, country, price, product_id)) WITHOUT ROWID;
CREATE TABLE stock (product_id INTEGER PRIMARY KEY, quantity INTEGER NOT NULL);
"""


def default_path(users: int = USERS, products: int = PRODUCTS, seed: int = SEED) -> Path:
    """Where the generated file is cached: $XDG_CACHE_HOME/genloop (or ~/.cache/genloop)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "genloop"
    return cache / f"search-v{VERSION}-{users}u-{products}p-{seed}.db"


def _meta(users, products, seed) -> dict:
    return {"version": str(VERSION), "users": str(users), "products": str(products), "seed": str(seed)}


def _read_meta(path: Path) -> dict | None:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return dict(db.execute("SELECT key, value FROM meta"))
    except sqlite3.DatabaseError:
        return None


def ensure(path: Path | None = None, users: int = USERS, products: int = PRODUCTS,
           seed: int = SEED) -> Path:
    """Return a database with these parameters at ``path``, generating it if it is missing or stale.

    Refuses to overwrite a file that is not one of ours.
    """
    path = Path(path) if path else default_path(users, products, seed)
    want = _meta(users, products, seed)
    if path.exists():
        have = _read_meta(path)
        if have == want:
            return path
        if have is None or "version" not in have:
            raise ValueError(f"{path} exists and is not a genloop search database; choose another --db")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Generate beside it, then rename: processes starting together never see half a file.
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        _generate(partial, users, products, seed, want)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _generate(path: Path, users: int, products: int, seed: int, meta: dict) -> None:
    rng = random.Random(seed)
    rows, words, stock = [], [], []
    for pid in range(1, products + 1):
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(MATERIALS)} {rng.choice(NOUNS)}"
        price = round(rng.uniform(2, 500), 2)
        country = rng.choice(COUNTRIES)
        rows.append((pid, name, price, country))
        words += [(word, country, price, pid) for word in set(name.split())]
        stock.append((pid, 0 if rng.random() < OUT_OF_STOCK else rng.randint(1, MAX_QUANTITY)))
    people = [(uid, f"{rng.choice(FIRST)} {rng.choice(LAST)}", rng.choice(COUNTRIES))
              for uid in range(1, users + 1)]
    db = sqlite3.connect(path)
    try:
        db.executescript(SCHEMA)
        with db:
            db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
            db.executemany("INSERT INTO users VALUES (?, ?, ?)", people)
            db.executemany("INSERT INTO products VALUES (?, ?, ?, ?)", rows)
            db.executemany("INSERT INTO product_words VALUES (?, ?, ?, ?)", words)
            db.executemany("INSERT INTO stock VALUES (?, ?)", stock)
    finally:
        db.close()


def words(query: str) -> list[str]:
    """The words of a search query, as product names are indexed (lower case)."""
    return query.lower().split()


class Catalog:
    """Read-only queries on the database; plain blocking methods, meant for IO threads.

    Each call borrows a connection from a pool (SQLite connections are cheap
    to keep, slow to open), so as many threads as the IO dispatcher runs can
    query at once. ``close()`` closes them all.
    """

    def __init__(self, path: Path) -> None:
        self.uri = f"file:{path}?mode=ro&immutable=1"   # immutable: no locking, the file never changes
        self._pool = queue.SimpleQueue()
        self._closed = False

    def _query(self, sql: str, args) -> list:
        try:
            db = self._pool.get_nowait()
        except queue.Empty:
            db = sqlite3.connect(self.uri, uri=True, check_same_thread=False)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            if self._closed:
                db.close()
            else:
                self._pool.put(db)

    def user(self, user_id: int) -> dict:
        """The profile of ``user_id``; ``LookupError`` if there is none."""
        rows = self._query("SELECT id, name, country FROM users WHERE id = ?", (user_id,))
        if not rows:
            raise LookupError(f"no user {user_id}")
        uid, name, country = rows[0]
        return {"id": uid, "name": name, "country": country}

    def search(self, query: str, country: str, limit: int) -> list:
        """Up to ``limit`` products sold in ``country`` whose name has every word of
        ``query``, cheapest first: ``[(id, name, price), ...]``."""
        first, *others = words(query) or [""]
        sql = ["SELECT p.id, p.name, p.price FROM product_words w JOIN products p ON p.id = w.product_id",
               "WHERE w.word = ? AND w.country = ?"]
        sql += ["AND instr(' ' || p.name || ' ', ?) > 0"] * len(others)
        sql.append("ORDER BY w.price, w.product_id LIMIT ?")
        return self._query(" ".join(sql), [first, country, *(f" {word} " for word in others), limit])

    def stock(self, product_ids: list) -> list:
        """The quantity in stock of each product, in the order asked (0 if unknown)."""
        if not product_ids:
            return []
        marks = ",".join("?" * len(product_ids))
        found = dict(self._query(f"SELECT product_id, quantity FROM stock WHERE product_id IN ({marks})",
                                 product_ids))
        return [found.get(pid, 0) for pid in product_ids]

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return
