"""``{% load plugipay_links %}``: link outside URLs only when they are ``http``/``https``.

``{% plugipay_link url label %}`` renders a link or, for any other scheme, text;
``{{ url|plugipay_safe_url }}`` is the URL when safe, else empty (for ``<img src>``, or an
``{% if %}`` around your own markup)."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString

from django_plugipay import links

register = template.Library()


@register.simple_tag
def plugipay_link(url: object, label: object = None, new_tab: bool = False) -> SafeString:
    return links.link(url, label, new_tab=new_tab)


@register.filter
def plugipay_safe_url(url: object) -> str:
    return links.safe_url(url) or ""
