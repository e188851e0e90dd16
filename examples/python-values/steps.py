"""Task functions for the python-values example: a tiny shop's order book.

Values travel between tasks as ordinary Python objects. targetrun checkpoints
each one in the format its target asks for and hands it to the tasks that need
it, loading it back from disk when the producing task was skipped:

    orders   list[dict]                   -> build/orders.json   (json)
    prices   dict[str, Decimal]           -> build/prices.pkl    (pickle: JSON has no Decimal)
    lines    list[dict] holding Decimals  -> build/lines.pkl     (pickle)
    totals   dict[str, dict] of str/int   -> build/totals.json   (json)
    receipt  str                          -> build/receipt.txt   (text)

``fetch_prices`` pretends to call a flaky price service: the first call fails and
the retry succeeds (see its docstring for how that works across processes).

Every function takes keyword arguments only: its ``args`` plus its ``needs``.
"""

from __future__ import annotations

import random
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

CUSTOMERS = ["ada", "grace", "linus", "margaret"]

# Catalogue prices in EUR.
CATALOGUE_EUR = {
    "tea": Decimal("4.50"),
    "coffee": Decimal("7.90"),
    "mug": Decimal("12.00"),
    "biscuits": Decimal("2.35"),
}

# EUR -> currency.
EXCHANGE_RATES = {"EUR": Decimal("1"), "USD": Decimal("1.08"), "GBP": Decimal("0.86")}

# How many times fetch_prices has been called since it last succeeded. It lives in
# a file next to this module, not in a variable, because a retry may run in
# another process (e.g. with a process-pool executor) and must still see it.
ATTEMPTS_FILE = Path(__file__).with_name(".fetch_prices.attempts")

CENT = Decimal("0.01")


def load_orders(*, count: int, seed: int) -> list[dict[str, Any]]:
    """Make ``count`` deterministic orders.

    Args:
        count: number of orders.
        seed: random seed; the same seed gives the same orders.

    Returns:
        ``[{"id": 1, "customer": "ada", "sku": "tea", "qty": 2}, ...]`` - plain
        JSON types, so the target is a readable ``.json`` file.
    """
    rng = random.Random(int(seed))
    return [
        {
            "id": order_id,
            "customer": rng.choice(CUSTOMERS),
            "sku": rng.choice(sorted(CATALOGUE_EUR)),
            "qty": rng.randint(1, 4),
        }
        for order_id in range(1, int(count) + 1)
    ]


def _count_attempt() -> int:
    """Add one to the attempts file and return the new count."""
    previous = int(ATTEMPTS_FILE.read_text()) if ATTEMPTS_FILE.exists() else 0
    ATTEMPTS_FILE.write_text(str(previous + 1))
    return previous + 1


def fetch_prices(*, currency: str) -> dict[str, Decimal]:
    """Return the price list in ``currency``, failing on the first call.

    This stands in for a call to an unreliable service. The first call raises
    ``ConnectionError``; the task has ``max_retries: 2`` so targetrun calls it
    again, and the second call succeeds. The call count is kept in
    ``.fetch_prices.attempts`` next to this file so the behaviour is the same
    whether the retry happens in this process or another one. On success the
    file is deleted, so the next real run fails once again.

    Args:
        currency: "EUR", "USD" or "GBP".

    Returns:
        ``{sku: Decimal price}``. Decimal does not fit in JSON, which is why this
        task's target is a pickle.
    """
    attempt = _count_attempt()
    if attempt == 1:
        raise ConnectionError(
            f"price service unavailable (simulated: attempt {attempt} always fails)"
        )
    ATTEMPTS_FILE.unlink(missing_ok=True)
    rate = EXCHANGE_RATES[currency.upper()]
    return {sku: (eur * rate).quantize(CENT, ROUND_HALF_UP) for sku, eur in CATALOGUE_EUR.items()}


def price_lines(
    *, orders: list[dict[str, Any]], price_list: dict[str, Decimal], tax_rate: float
) -> list[dict[str, Any]]:
    """Price every order, adding tax.

    Args:
        orders: output of ``load_orders``.
        price_list: output of ``fetch_prices`` (the Pipelinefile maps the task
            ``prices`` onto this argument name with ``needs: {price_list: prices}``).
        tax_rate: e.g. 0.2 for 20 %.

    Returns:
        The orders with ``unit``, ``net``, ``tax`` and ``gross`` Decimal fields.
    """
    rate = Decimal(str(tax_rate))
    lines = []
    for order in orders:
        unit = price_list[order["sku"]]
        net = unit * order["qty"]
        tax = (net * rate).quantize(CENT, ROUND_HALF_UP)
        lines.append({**order, "unit": unit, "net": net, "tax": tax, "gross": net + tax})
    return lines


def customer_totals(*, lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Sum the priced lines per customer.

    Args:
        lines: output of ``price_lines``.

    Returns:
        ``{customer: {"orders": int, "items": int, "gross": "12.34"}}`` sorted by
        customer. Amounts become strings so the result is valid JSON.
    """
    totals: dict[str, dict[str, Any]] = {}
    for line in lines:
        entry = totals.setdefault(
            line["customer"], {"orders": 0, "items": 0, "gross": Decimal("0")}
        )
        entry["orders"] += 1
        entry["items"] += line["qty"]
        entry["gross"] += line["gross"]
    return {
        customer: {**entry, "gross": str(entry["gross"])}
        for customer, entry in sorted(totals.items())
    }


def write_receipt(*, per_customer: dict[str, dict[str, Any]], currency: str, shop: str) -> str:
    """Format the customer totals as a text receipt.

    Args:
        per_customer: output of ``customer_totals``.
        currency: shown next to each amount.
        shop: a heading (the pipeline passes ``{flow_name}``).

    Returns:
        The receipt text, stored as ``build/receipt.txt``.
    """
    lines = [f"{shop} - totals per customer", ""]
    lines += [
        f"{customer:<10} {t['orders']:>2} orders {t['items']:>3} items "
        f"{t['gross']:>9} {currency}"
        for customer, t in per_customer.items()
    ]
    grand = sum(Decimal(t["gross"]) for t in per_customer.values())
    lines += ["", f"{'total':<10} {grand:>29} {currency}"]
    return "\n".join(lines) + "\n"
