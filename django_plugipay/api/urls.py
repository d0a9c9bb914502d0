"""API URLs: ``path("plugipay/api/", include("django_plugipay.api.urls"))``."""

from django.urls import path, re_path

from django_plugipay.api import billing, money, views

app_name = "plugipay-api"

#: the first segment of every endpoint's URL
RESOURCES = (
    "checkout-sessions",
    "payments",
    "refunds",
    "subscriptions",
    "invoices",
    "portal-sessions",
    "payouts",
    "receipts",
    "schema",
)

urlpatterns = [
    path("checkout-sessions/", views.CheckoutSessionCreate.as_view(), name="checkout-session-list"),
    path(
        "checkout-sessions/<str:id>/",
        views.CheckoutSessionDetail.as_view(),
        name="checkout-session-detail",
    ),
    path("payments/", views.PaymentList.as_view(), name="payment-list"),
    path("payments/<str:id>/", views.PaymentDetail.as_view(), name="payment-detail"),
    path(
        "payments/<str:id>/refunds/",
        views.PaymentRefundCreate.as_view(),
        name="payment-refund-create",
    ),
    path("refunds/<str:id>/", views.RefundDetail.as_view(), name="refund-detail"),
    path("subscriptions/", billing.SubscriptionList.as_view(), name="subscription-list"),
    path(
        "subscriptions/<str:id>/",
        billing.SubscriptionDetail.as_view(),
        name="subscription-detail",
    ),
    path(
        "subscriptions/<str:id>/cancel/",
        billing.SubscriptionCancel.as_view(),
        name="subscription-cancel",
    ),
    path("invoices/", billing.InvoiceList.as_view(), name="invoice-list"),
    path("portal-sessions/", billing.PortalSessionCreate.as_view(), name="portal-session-create"),
    path("payouts/", money.PayoutList.as_view(), name="payout-list"),
    path("payouts/balance/", money.BalanceDetail.as_view(), name="payout-balance"),
    path("payouts/<str:id>/", money.PayoutDetail.as_view(), name="payout-detail"),
    path("payouts/<str:id>/move/", money.PayoutMove.as_view(), name="payout-move"),
    path("receipts/", money.ReceiptList.as_view(), name="receipt-list"),
    path("receipts/<str:id>/", money.ReceiptDetail.as_view(), name="receipt-detail"),
    path("schema/", views.Schema.as_view(), name="schema"),
    # last: any other URL of these resources is a JSON 404 (an endpoint's without its slash:
    # see the view); other URLs under the prefix stay the project's own
    re_path(rf"^(?:{'|'.join(RESOURCES)})(?:/.*)?$", views.NoSuchEndpoint.as_view()),
]
