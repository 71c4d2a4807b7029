"""The RQ side: the functions its work horses run, one fork per job."""


def invoice(order: int) -> str:
    """Number an invoice; orders above 100 go to the archive series."""
    if order > 100:
        return f"A-{order}"
    return f"I-{order}"


def ship(order: int, express: bool) -> str:
    """Book a shipment."""
    if express:
        return f"express {order}"
    return f"standard {order}"
