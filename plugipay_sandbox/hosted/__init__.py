"""Hosted pages (checkout, invoice, billing portal); each module registers its own routes."""
