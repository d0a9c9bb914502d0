"""URLs: ``path("plugipay/", include("django_plugipay.urls"))``."""

from django.urls import path

from django_plugipay.views import (
    InvoiceDocumentView,
    PortalView,
    ReceiptDocumentView,
    WebhookView,
)

app_name = "plugipay"

urlpatterns = [
    path("webhook/", WebhookView.as_view(), name="webhook"),
    path("webhook/<str:alias>/", WebhookView.as_view(), name="webhook_account"),
    path("billing/portal/", PortalView.as_view(), name="portal"),
    path(
        "billing/invoices/<str:plugipay_id>/document/",
        InvoiceDocumentView.as_view(),
        name="invoice_document",
    ),
    path(
        "receipts/<str:plugipay_id>/document/",
        ReceiptDocumentView.as_view(),
        name="receipt_document",
    ),
]
