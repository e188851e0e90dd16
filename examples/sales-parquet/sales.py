"""The sales example's tasks: plain pandas functions; targetrun reads and writes the files."""

from __future__ import annotations

import pandas as pd


def days_in(sales: pd.DataFrame) -> list[str]:
    """The days the export covers, one partition each."""
    return sorted(pd.to_datetime(sales["ordered_at"]).dt.strftime("%Y-%m-%d").unique().tolist())


def clean_day(day: str, sales: pd.DataFrame) -> pd.DataFrame:
    """One day's orders, cleaned: typed columns, trimmed names, no duplicates, no bad rows."""
    df = sales.drop_duplicates(subset="order_id").copy()
    df["ordered_at"] = pd.to_datetime(df["ordered_at"])
    df = df[df["ordered_at"].dt.strftime("%Y-%m-%d") == day]
    df["region"] = df["region"].str.strip().str.lower().astype("category")
    df["product"] = df["product"].astype("category")
    df = df[df["quantity"].notna() & (df["quantity"] > 0)]
    df["quantity"] = df["quantity"].astype("int32")
    df["revenue"] = df["quantity"] * df["unit_price"]
    return df.set_index("order_id").sort_index()


def aggregate(partitions: list[pd.DataFrame]) -> pd.DataFrame:
    """Revenue and orders per day and region, over every partition."""
    orders = pd.concat(partitions)
    orders["day"] = orders["ordered_at"].dt.date
    return (orders.groupby(["day", "region"], observed=True)
            .agg(orders=("quantity", "size"), units=("quantity", "sum"), revenue=("revenue", "sum"))
            .round(2))


def report(totals: pd.DataFrame) -> str:
    by_day = totals.groupby(level="day")["revenue"].sum()
    best = totals["revenue"].idxmax()
    lines = [f"Sales report: {len(by_day)} days, {int(totals['orders'].sum())} orders, "
             f"revenue {totals['revenue'].sum():.2f}", ""]
    lines += [f"  {day}  {revenue:8.2f}" for day, revenue in by_day.items()]
    lines += ["", f"Best day and region: {best[0]} {best[1]} ({totals['revenue'].max():.2f})"]
    return "\n".join(lines) + "\n"
