"""Billing sources: the write side's input adapters, one module per source."""
