"""What one search asks the backends and answers, whatever the calling style.

The three fronts differ only in how they wait for each answer; what they
ask, in which order, and what they make of the answers is here, once.
"""
from dataclasses import dataclass

from .backends import ROLES

#: Products asked of the product search per query.
RESULTS = 10


@dataclass(frozen=True, slots=True)
class Ask:
    """One backend call: which backend, which method, which arguments."""
    role: str
    method: str
    args: list


def ask_user(user_id: int) -> Ask:
    return Ask("user", ROLES["user"].method, [user_id])


def ask_products(user: dict, query: str) -> Ask:
    return Ask("product", ROLES["product"].method, [query, user["country"], RESULTS])


def ask_stock(products: list) -> Ask:
    return Ask("stock", ROLES["stock"].method, [[product[0] for product in products]])


def answer(query: str, user: dict, products: list, stock: list) -> dict:
    """The products found that are in stock, with who asked."""
    return {"query": query, "user": user,
            "products": [{"id": pid, "name": name, "price": price, "stock": quantity}
                         for (pid, name, price), quantity in zip(products, stock) if quantity > 0]}
