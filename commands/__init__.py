"""Operator commands (`flask db …`): thin click commands over schema/, seed/ and services/."""
