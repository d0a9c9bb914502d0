"""The hosted pages' languages: English and Bahasa Indonesia, chosen by ``Accept-Language``.

One table, English text as the key (an untranslated string shows in English)::

    from plugipay_sandbox.hosted import i18n
    _ = i18n.gettext
    _("Pay by card")                       # "Bayar dengan kartu" while "id" is active
    _("Pay {amount}", amount="IDR 5,000")  # str.format on the translated text
    i18n.money(250000, "IDR")              # "Rp 250.000" in id, "IDR 250,000" in en

``SandboxApp`` activates the request's language (``?lang=`` first, then ``Accept-Language``)
before every page handler; :func:`activate` and :func:`language_of` are public for other pages.
The language lives in a context variable, so threads serving other requests keep their own.
Inside :func:`recording_misses`, every text looked up in Indonesian without an entry is
collected, so a test can render the pages and fail on English left untranslated.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping

LANGUAGES = ("en", "id")
DEFAULT = "en"
DISPLAY_EXPONENTS = {"IDR": 0, "USD": 2, "JPY": 0, "KRW": 0}

_current: contextvars.ContextVar[str] = contextvars.ContextVar("sandbox_language", default=DEFAULT)
#: While a test records: the texts asked for in a language whose table has no entry for them.
_misses: set[str] | None = None

ID: dict[str, str] = {
    # layout
    "Plugipay <b>Sandbox</b> — this is not Plugipay. No real money moves; only the sandbox "
    "test cards work.": "Plugipay <b>Sandbox</b> — ini bukan Plugipay. Tidak ada uang sungguhan "
    "yang berpindah; hanya kartu uji sandbox yang berfungsi.",
    "Name on card": "Nama pada kartu",
    "Card number": "Nomor kartu",
    "Expiry": "Masa berlaku",
    "CVC": "CVC",
    "Approve this payment?": "Setujui pembayaran ini?",
    "{amount} to {merchant}. A real bank would ask for a one-time code.": "{amount} kepada "
    "{merchant}. Bank sungguhan akan meminta kode sekali pakai.",
    "Approve": "Setujui",
    "Fail authentication": "Gagalkan autentikasi",
    # checkout
    "Checkout": "Pembayaran",
    "Card": "Kartu",
    "Bank transfer (VA)": "Transfer bank (VA)",
    "QRIS": "QRIS",
    "E-wallet": "Dompet digital",
    "Retail outlet": "Gerai ritel",
    "PayPal": "PayPal",
    "Manual transfer": "Transfer manual",
    "Checkout session": "Sesi pembayaran",
    "Pay by card": "Bayar dengan kartu",
    "Pay {amount}": "Bayar {amount}",
    "Or pay another way": "Atau bayar dengan cara lain",
    "Cancel and return to the shop": "Batalkan dan kembali ke toko",
    "Sandbox test cards (any future expiry, any 3-digit CVC)": "Kartu uji sandbox (masa "
    "berlaku apa pun di masa depan, CVC 3 digit apa pun)",
    "Payment received": "Pembayaran diterima",
    "Paid with {method}.": "Dibayar dengan {method}.",
    "Return to the shop": "Kembali ke toko",
    "Back to the shop": "Kembali ke toko",
    "Waiting for the merchant": "Menunggu konfirmasi penjual",
    "The merchant confirms manual transfers by hand. You claimed your transfer at {time}.": ""
    "Penjual mengonfirmasi transfer manual secara langsung. Anda mengklaim transfer pada {time}.",
    "Proof of transfer": "Bukti transfer",
    "This checkout has expired": "Pembayaran ini sudah kedaluwarsa",
    "This checkout was canceled": "Pembayaran ini dibatalkan",
    "This checkout is {status}": "Pembayaran ini berstatus {status}",
    "Start again from the shop.": "Mulai lagi dari toko.",
    "Cancel": "Batal",
    "Pay before {deadline}": "Bayar sebelum {deadline}",
    "Transfer exactly {amount} to this {bank} virtual account:": "Transfer tepat {amount} ke "
    "virtual account {bank} ini:",
    "Virtual account number": "Nomor virtual account",
    "Scan this QRIS code with any bank or e-wallet app to pay {amount}:": "Pindai kode QRIS ini "
    "dengan aplikasi bank atau dompet digital apa pun untuk membayar {amount}:",
    "QR string": "String QR",
    "Not a decodable QR code: the sandbox draws its string as a pattern.": "Bukan kode QR yang "
    "dapat dipindai: sandbox menggambar string-nya sebagai pola.",
    "Open {wallet} to approve the payment of {amount}.": "Buka {wallet} untuk menyetujui "
    "pembayaran sebesar {amount}.",
    "Open the {wallet} approval page": "Buka halaman persetujuan {wallet}",
    "Pay {amount} at any {outlet} cashier with this payment code:": "Bayar {amount} di kasir "
    "{outlet} mana pun dengan kode pembayaran ini:",
    "Payment code": "Kode pembayaran",
    "In the sandbox no money moves: settle the payment below.": "Di sandbox tidak ada uang yang "
    "berpindah: selesaikan pembayaran di bawah ini.",
    "Simulate payment": "Simulasikan pembayaran",
    "I will pay later: back to the shop": "Saya bayar nanti: kembali ke toko",
    "Simulate failure": "Simulasikan kegagalan",
    "Choose your bank": "Pilih bank Anda",
    "Choose your e-wallet": "Pilih dompet digital Anda",
    "Choose an outlet": "Pilih gerai",
    "Complete your {method} payment": "Selesaikan pembayaran {method} Anda",
    "{wallet} · approve payment": "{wallet} · setujui pembayaran",
    "{merchant} asks you to pay {amount}.": "{merchant} meminta Anda membayar {amount}.",
    "Decline": "Tolak",
    "Transfer {amount} to one of the merchant's bank accounts:": "Transfer {amount} ke salah satu "
    "rekening bank penjual:",
    "Bank": "Bank",
    "Account number": "Nomor rekening",
    "Account holder": "Pemilik rekening",
    "Proof of transfer (optional; PNG, JPEG or WEBP up to 4 MB)": "Bukti transfer (opsional; "
    "PNG, JPEG atau WEBP hingga 4 MB)",
    "I have transferred the money": "Saya sudah mentransfer uangnya",
    "The proof must be a PNG, JPEG or WEBP image.": "Bukti harus berupa gambar PNG, JPEG atau "
    "WEBP.",
    "The proof must be at most 4 MB.": "Bukti paling besar 4 MB.",
    "Pay by manual transfer": "Bayar dengan transfer manual",
    "Your card was declined.": "Kartu Anda ditolak.",
    "Try another card.": "Coba kartu lain.",
    "The payment failed. Choose a method to try again.": "Pembayaran gagal. Pilih metode untuk "
    "mencoba lagi.",
    # invoice and portal
    "Invoice": "Faktur",
    "Pay invoice": "Bayar faktur",
    "Paid": "Lunas",
    "Amount due": "Jumlah terutang",
    "Due": "Jatuh tempo",
    "Download PDF": "Unduh PDF",
    "billed to": "ditagihkan kepada",
    "Subtotal": "Subtotal",
    "Discount": "Diskon",
    "Tax": "Pajak",
    "Total": "Total",
    "Amount paid": "Jumlah dibayar",
    "Open": "Terbuka",
    "Void": "Dibatalkan",
    "Uncollectible": "Tidak tertagih",
    "Draft": "Draf",
    "Billing portal": "Portal tagihan",
    "Subscriptions": "Langganan",
    "Invoices": "Faktur",
    "Cancel subscription": "Batalkan langganan",
    "Pause": "Jeda",
    "Resume": "Lanjutkan",
    "Trial": "Masa uji coba",
    "Active": "Aktif",
    "Past due": "Lewat jatuh tempo",
    "Paused": "Dijeda",
    "Canceled": "Dibatalkan",
    "Awaiting payment": "Menunggu pembayaran",
    "This link has expired": "Tautan ini sudah kedaluwarsa",
    "This invoice is past due.": "Faktur ini sudah lewat jatuh tempo.",
    "Save this card for future payments (a sandbox payment token on the customer)": "Simpan "
    "kartu ini untuk pembayaran berikutnya (token pembayaran sandbox pada pelanggan)",
    "Back to the billing portal": "Kembali ke portal tagihan",
    "Paid on {date}. A receipt is on its way (the sandbox sends no mail).": "Lunas pada {date}. "
    "Tanda terima sedang dikirim (sandbox tidak mengirim surel).",
    "Download the invoice (PDF)": "Unduh faktur (PDF)",
    "This invoice was voided": "Faktur ini dibatalkan",
    "Nothing is due.": "Tidak ada yang perlu dibayar.",
    "This invoice is {status}": "Faktur ini berstatus {status}",
    "It can no longer be paid here.": "Faktur ini tidak dapat dibayar lagi di sini.",
    "The card was declined.": "Kartu ditolak.",
    "The card has insufficient funds.": "Saldo kartu tidak mencukupi.",
    "3-D Secure authentication failed.": "Autentikasi 3-D Secure gagal.",
    "Authentication failed.": "Autentikasi gagal.",
    "Not Plugipay: a test document. No real money moves.": "Bukan Plugipay: dokumen uji. "
    "Tidak ada uang sungguhan yang berpindah.",
    "Status: {status}": "Status: {status}",
    "Issued: {issued}    Due: {due}": "Diterbitkan: {issued}    Jatuh tempo: {due}",
    "Billed to: {customer}": "Ditagihkan kepada: {customer}",
    "Pay online: {url}": "Bayar daring: {url}",
    "Billing portal links work for 15 minutes. Go back to the shop and open the portal again "
    "for a new link.": "Tautan portal tagihan berlaku selama 15 menit. Kembali ke toko dan buka "
    "portal lagi untuk mendapatkan tautan baru.",
    "Link expired": "Tautan kedaluwarsa",
    "Your subscription will end at the close of the current period.": "Langganan Anda akan "
    "berakhir pada akhir periode berjalan.",
    "Your subscription is paused: no renewals until you resume it.": "Langganan Anda dijeda: "
    "tidak ada perpanjangan sampai Anda melanjutkannya.",
    "Your subscription is running again.": "Langganan Anda berjalan kembali.",
    "Your new plan is billed from the next period.": "Paket baru Anda ditagih mulai periode "
    "berikutnya.",
    "Your card is saved: renewals are charged to it.": "Kartu Anda tersimpan: perpanjangan "
    "ditagihkan ke kartu ini.",
    "day": "hari",
    "week": "minggu",
    "month": "bulan",
    "year": "tahun",
    "{count} days": "{count} hari",
    "{count} weeks": "{count} minggu",
    "{count} months": "{count} bulan",
    "{count} years": "{count} tahun",
    "Ended {date}": "Berakhir {date}",
    "Ends {date}": "Berakhir {date}",
    "Trial ends {date}": "Masa uji coba berakhir {date}",
    "Resumes {date}": "Berlanjut {date}",
    "Paused until you resume it": "Dijeda sampai Anda melanjutkannya",
    "Renews {date}": "Diperpanjang {date}",
    "Switch plan": "Ganti paket",
    "Switch": "Ganti",
    "Pay": "Bayar",
    "PDF": "PDF",
    "No invoices yet.": "Belum ada faktur.",
    "Update the card": "Perbarui kartu",
    "Save card": "Simpan kartu",
    "Sandbox test cards only; nothing is charged.": "Hanya kartu uji sandbox; tidak ada yang "
    "ditagihkan.",
    "No subscriptions.": "Tidak ada langganan.",
    "Default payment method: {token}": "Metode pembayaran utama: {token}",
    "No saved payment method: tick “save this card” when you pay an invoice.": "Belum ada metode "
    "pembayaran tersimpan: centang “simpan kartu ini” saat Anda membayar faktur.",
    # dates
    "Jan": "Jan",
    "Feb": "Feb",
    "Mar": "Mar",
    "Apr": "Apr",
    "May": "Mei",
    "Jun": "Jun",
    "Jul": "Jul",
    "Aug": "Agu",
    "Sep": "Sep",
    "Oct": "Okt",
    "Nov": "Nov",
    "Dec": "Des",
    # the card form
    "Succeeds": "Berhasil",
    "Declined (generic)": "Ditolak (umum)",
    "Declined (insufficient funds)": "Ditolak (saldo tidak mencukupi)",
    "Asks for a 3-D Secure step": "Meminta langkah 3-D Secure",
    "That card number is not valid.": "Nomor kartu itu tidak valid.",
    "Use one of the sandbox test cards listed on this page; no real card works.": "Gunakan salah "
    "satu kartu uji sandbox yang tercantum di halaman ini; kartu sungguhan tidak berfungsi.",
    "Enter the expiry as MM/YY.": "Masukkan masa berlaku dengan format BB/TT.",
    "The expiry month must be between 01 and 12.": "Bulan masa berlaku harus antara 01 dan 12.",
    "The card has expired.": "Kartu sudah kedaluwarsa.",
    "The CVC is the 3 digits on the back of the card.": "CVC adalah 3 digit di bagian belakang "
    "kartu.",
    "Sandbox Bank · 3-D Secure": "Bank Sandbox · 3-D Secure",
    # dashboard
    "Dashboard": "Dasbor",
    "Plugipay dashboard": "Dasbor Plugipay",
    "Sandbox": "Sandbox",
    "Test data only": "Hanya data uji",
    "Payments": "Pembayaran",
    "Customers": "Pelanggan",
    "Checkout sessions": "Sesi pembayaran",
    "Events": "Peristiwa",
    "Settings → Webhooks": "Pengaturan → Webhook",
    "Refused": "Ditolak",
    "Refused: this form came from another site.": "Ditolak: formulir ini berasal dari situs lain.",
    "live": "langsung",
    "Succeeded": "Berhasil",
    "Failed": "Gagal",
    "Pending": "Tertunda",
    "Pending review": "Menunggu peninjauan",
    "Refunded": "Dikembalikan",
    "Partially refunded": "Dikembalikan sebagian",
    "Completed": "Selesai",
    "Expired": "Kedaluwarsa",
    "Disabled after failures": "Dinonaktifkan setelah gagal berulang kali",
    "Key": "Kunci",
    "Value": "Nilai",
    "No metadata.": "Tidak ada metadata.",
    "Status": "Status",
    "All statuses": "Semua status",
    "Search by id or email": "Cari berdasarkan ID atau email",
    "Search": "Cari",
    "Filter": "Filter",
    "Amount": "Jumlah",
    "Method": "Metode",
    "Customer": "Pelanggan",
    "Payment id": "ID pembayaran",
    "Created": "Dibuat",
    "No payments match.": "Tidak ada pembayaran yang cocok.",
    "No events yet.": "Belum ada peristiwa.",
    "Payment": "Pembayaran",
    "Refunds": "Pengembalian dana",
    "Activity": "Aktivitas",
    "Refund id": "ID pengembalian dana",
    "Reason": "Alasan",
    "No refunds.": "Tidak ada pengembalian dana.",
    "Paid at": "Dibayar pada",
    "Failure": "Kegagalan",
    "Mode": "Mode",
    "Not found": "Tidak ditemukan",
    "Nothing with id {id} is in the sandbox.": "Tidak ada apa pun dengan ID {id} di sandbox.",
    "Email": "Email",
    "Name": "Nama",
    "Metadata": "Metadata",
    "No customers yet.": "Belum ada pelanggan.",
    "Customer id": "ID pelanggan",
    "Phone": "Telepon",
    "External id": "ID eksternal",
    "No payments.": "Tidak ada pembayaran.",
    "Session id": "ID sesi",
    "No checkout sessions yet.": "Belum ada sesi pembayaran.",
    "Description": "Keterangan",
    "Hosted page": "Halaman pembayaran",
    "Expires": "Kedaluwarsa pada",
    "No payment attempts.": "Tidak ada percobaan pembayaran.",
    "Event type": "Jenis peristiwa",
    "All event types": "Semua jenis peristiwa",
    "Type": "Jenis",
    "Object": "Objek",
    "Time": "Waktu",
    "No events match.": "Tidak ada peristiwa yang cocok.",
    "Event": "Peristiwa",
    "Event id": "ID peristiwa",
    "Endpoint": "Endpoint",
    "Attempts": "Percobaan",
    "Deliveries": "Pengiriman",
    "Not sent to any endpoint.": "Tidak dikirim ke endpoint mana pun.",
    "Event data (the JSON the endpoints receive)": "Data peristiwa (JSON yang diterima endpoint)",
    "Webhooks": "Webhook",
    "The endpoint was deleted.": "Endpoint sudah dihapus.",
    "URL": "URL",
    "Add endpoint": "Tambah endpoint",
    "No endpoints yet. Add one to receive events.": "Belum ada endpoint. Tambahkan satu untuk "
    "menerima peristiwa.",
    "All events": "Semua peristiwa",
    "Endpoint URL": "URL endpoint",
    "Events to send": "Peristiwa yang dikirim",
    "Send me everything": "Kirimkan semuanya",
    "Tick the events to send, or everything.": "Centang peristiwa yang akan dikirim, atau "
    "semuanya.",
    "Endpoint added": "Endpoint ditambahkan",
    "Signing secret": "Rahasia penandatanganan",
    "Copy it now into your settings (PLUGIPAY['WEBHOOK_SECRETS']): it is shown only this "
    "once.": "Salin sekarang ke pengaturan Anda (PLUGIPAY['WEBHOOK_SECRETS']): rahasia ini "
    "hanya ditampilkan sekali ini.",
    "Done": "Selesai",
    "The endpoint is paused: new events are not sent to it.": "Endpoint dijeda: peristiwa baru "
    "tidak dikirim ke sana.",
    "The endpoint is enabled again.": "Endpoint diaktifkan kembali.",
    "The delivery is queued for another attempt.": "Pengiriman masuk antrean untuk dicoba lagi.",
    "Endpoint id": "ID endpoint",
    "Failures in a row": "Gagal berturut-turut",
    "Disabled because": "Dinonaktifkan karena",
    "Enable": "Aktifkan",
    "Delete": "Hapus",
    "Webhook endpoint": "Endpoint webhook",
    "Nothing delivered yet.": "Belum ada yang dikirim.",
    "Retry": "Coba lagi",
    "Next retry": "Percobaan berikutnya",
    "1 attempt": "1 percobaan",
    "{n} attempts": "{n} percobaan",
    "HTTP {code}": "HTTP {code}",
    "no answer": "tidak ada jawaban",
    "paused in the dashboard": "dijeda di dasbor",
    "paused through the API": "dijeda melalui API",
    "{n} consecutive failed deliveries": "{n} pengiriman gagal berturut-turut",
    "Disabled automatically": "Dinonaktifkan otomatis",
    "after {n} consecutive failed deliveries spanning 24 hours of Plugipay's retry "
    "schedule ({seconds} s of this sandbox's schedule)": "setelah {n} pengiriman gagal "
    "berturut-turut selama 24 jam jadwal percobaan ulang Plugipay ({seconds} detik pada jadwal "
    "sandbox ini)",
    "Return to {merchant}": "Kembali ke {merchant}",
    "Added when the sandbox started: your project's webhook URL": "Ditambahkan saat sandbox "
    "dimulai: URL webhook proyek Anda",
    "HTTP {code}: answered {code} to {location} — is the webhook URL behind a login?": "HTTP "
    "{code}: menjawab {code} ke {location} — apakah URL webhook berada di balik login?",
    # dashboard: billing pages, refunds, the clock, labels for codes
    "1 hour": "1 jam",
    "1 day": "1 hari",
    "7 days": "7 hari",
    "31 days": "31 hari",
    "Sandbox clock": "Jam sandbox",
    "real time": "waktu nyata",
    "{offset} ahead of real time": "{offset} lebih cepat dari waktu nyata",
    "{n} d": "{n} hr",
    "{n} h": "{n} j",
    "{n} min": "{n} mnt",
    "Advance the clock": "Majukan jam",
    "Advance the clock by": "Majukan jam sebanyak",
    "Amount to refund": "Jumlah yang dikembalikan",
    "Refund": "Kembalikan dana",
    "Choose a reason": "Pilih alasan",
    "Choose a reason for the refund.": "Pilih alasan pengembalian dana.",
    "In the smallest unit of {currency}; at most {amount}.": (
        "Dalam satuan terkecil {currency}; paling banyak {amount}."
    ),
    "Enter the amount as a whole number in the currency's smallest unit.": (
        "Masukkan jumlah sebagai bilangan bulat dalam satuan terkecil mata uang."
    ),
    "The refund was created.": "Pengembalian dana sudah dibuat.",
    "Duplicate": "Duplikat",
    "Fraudulent": "Penipuan",
    "Requested by customer": "Diminta oleh pelanggan",
    "Other": "Lainnya",
    "Test mode": "Mode uji",
    "Live mode": "Mode langsung",
    "Charge automatically": "Tagih otomatis",
    "Send an invoice": "Kirim faktur",
    "Archived": "Diarsipkan",
    "Inactive": "Tidak aktif",
    "Incomplete": "Belum lengkap",
    "Plans": "Paket",
    "Plan": "Paket",
    "Plan id": "ID paket",
    "Prices": "Harga",
    "Price": "Harga",
    "Price id": "ID harga",
    "No prices.": "Tidak ada harga.",
    "No plans yet. Create one here or with POST /api/v1/plans.": (
        "Belum ada paket. Buat di sini atau dengan POST /api/v1/plans."
    ),
    "Create plan": "Buat paket",
    "Member": "Anggota",
    "Price per period": "Harga per periode",
    "In the currency's smallest unit (rupiah, cents).": (
        "Dalam satuan terkecil mata uang (rupiah, sen)."
    ),
    "Currency": "Mata uang",
    "Billed every": "Ditagih setiap",
    "Number of intervals": "Jumlah interval",
    "Trial days": "Hari uji coba",
    "Give the plan a name.": "Beri nama paket ini.",
    "Enter the price as a whole number in the currency's smallest unit.": (
        "Masukkan harga sebagai bilangan bulat dalam satuan terkecil mata uang."
    ),
    "Choose the currency and how often the plan is billed.": (
        "Pilih mata uang dan seberapa sering paket ditagih."
    ),
    "The number of intervals and the trial days are whole numbers.": (
        "Jumlah interval dan hari uji coba berupa bilangan bulat."
    ),
    "Customers may cancel": "Pelanggan boleh membatalkan",
    "Customers may pause": "Pelanggan boleh menjeda",
    "Customers may upgrade": "Pelanggan boleh naik paket",
    "Customers may downgrade": "Pelanggan boleh turun paket",
    "Customers may update their card": "Pelanggan boleh memperbarui kartunya",
    "The plan was created. Subscribe customers to its price with the API.": (
        "Paket sudah dibuat. Daftarkan pelanggan ke harganya melalui API."
    ),
    "Subscription": "Langganan",
    "Subscription id": "ID langganan",
    "Collection": "Penagihan",
    "Current period": "Periode berjalan",
    "Current period ends": "Periode berjalan berakhir",
    "Trial ends": "Uji coba berakhir",
    "Cancels at": "Batal pada",
    "Canceled at": "Dibatalkan pada",
    "Invoice id": "ID faktur",
    "Number": "Nomor",
    "Lines": "Rincian",
    "No lines.": "Tidak ada rincian.",
    "Quantity": "Kuantitas",
    # account switcher
    "Account": "Akun",
    "All accounts": "Semua akun",
    "Show": "Tampilkan",
    # receipts
    "Receipt": "Kuitansi",
    "Issued: {issued}": "Diterbitkan: {issued}",
    "NPWP: {tax_id}": "NPWP: {tax_id}",
    "PPN {rate}% (included)": "PPN {rate}% (termasuk)",
    "Paid by {method}, reference {reference}": "Dibayar dengan {method}, referensi {reference}",
    "A commercial receipt, not a tax invoice (Faktur Pajak).": "Kuitansi komersial, bukan "
    "Faktur Pajak.",
    # money out
    "All sources": "Semua sumber",
    "Available": "Tersedia",
    "Balance": "Saldo",
    "Bank account": "Rekening bank",
    "Bank code": "Kode bank",
    "Bank reference": "Referensi bank",
    "Cancel payout": "Batalkan pencairan",
    "Cancelled": "Dibatalkan",
    "Cash": "Kas",
    "Credit": "Kredit",
    "Credits": "Kredit",
    "Debit": "Debit",
    "Debits": "Debit",
    "Document": "Dokumen",
    "Download CSV": "Unduh CSV",
    "Failure reason": "Alasan gagal",
    "In payouts": "Dalam pencairan",
    "In rupiah; at most {amount}.": "Dalam rupiah; paling banyak {amount}.",
    "In transit": "Dalam pengiriman",
    "Issued": "Diterbitkan",
    "Ledger": "Buku besar",
    "Ledger balance": "Saldo buku besar",
    "Ledger transaction": "Transaksi buku besar",
    "Mark failed": "Tandai gagal",
    "Mark in transit": "Tandai dalam pengiriman",
    "Mark paid": "Tandai dibayar",
    "Note": "Catatan",
    "Pay out": "Cairkan",
    "Payout": "Pencairan",
    "Payout id": "ID pencairan",
    "Payouts": "Pencairan",
    "Platform fees": "Biaya platform",
    "Posted": "Dicatat",
    "Processed": "Diproses",
    "Receipts": "Kuitansi",
    "Reference": "Referensi",
    "Revenue": "Pendapatan",
    "Save bank account": "Simpan rekening bank",
    "Source": "Sumber",
    "The bank account was saved.": "Rekening bank sudah disimpan.",
    "The payout is marked in transit.": "Pencairan ditandai dalam pengiriman.",
    "The payout is marked paid.": "Pencairan ditandai dibayar.",
    "The payout is marked failed; its money is available again.": "Pencairan ditandai gagal; "
    "dananya tersedia lagi.",
    "The payout was cancelled; its money is available again.": "Pencairan dibatalkan; "
    "dananya tersedia lagi.",
    "The payout was created.": "Pencairan sudah dibuat.",
    "To:": "Ke:",
    "Totals": "Jumlah",
    "Transaction": "Transaksi",
    "Why it failed": "Alasan gagal",
    "Xendit disbursement": "Pencairan Xendit",
    "incl. PPN": "termasuk PPN",
    "No payouts yet.": "Belum ada pencairan.",
    "No ledger entries.": "Belum ada entri buku besar.",
    "No receipts yet: one is issued for each payment.": "Belum ada kuitansi: satu "
    "diterbitkan untuk setiap pembayaran.",
    "Enter the amount as a whole number of rupiah.": "Masukkan jumlah sebagai "
    "bilangan bulat rupiah.",
    "Say why the payout failed.": "Sebutkan mengapa pencairan gagal.",
    "No bank account yet: save one below first.": "Belum ada rekening bank: simpan "
    "satu di bawah terlebih dahulu.",
}

TABLES: Mapping[str, Mapping[str, str]] = {"id": ID}


def language_of(query_lang: str | None, accept_language: str | None) -> str:
    """``?lang=`` if it names a language we have, else the best of ``Accept-Language``."""
    if query_lang in LANGUAGES:
        return query_lang  # type: ignore[return-value]
    choices: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary == "in":  # the old code for Indonesian
            primary = "id"
        if primary in LANGUAGES and quality > 0:
            choices.append((-quality, index, primary))
    return min(choices)[2] if choices else DEFAULT


def activate(language: str) -> contextvars.Token[str]:
    return _current.set(language if language in LANGUAGES else DEFAULT)


def reset(token: contextvars.Token[str]) -> None:
    _current.reset(token)


def current() -> str:
    return _current.get()


def gettext(text: str, **values: object) -> str:
    """``text`` in the active language, formatted with ``values`` when given."""
    table = TABLES.get(current())
    translated = table.get(text) if table is not None else None
    if translated is None and table is not None and _misses is not None:
        _misses.add(text)
    translated = translated or text
    return translated.format(**values) if values else translated


@contextlib.contextmanager
def recording_misses() -> Iterator[set[str]]:
    """Collect, in the set yielded, every text looked up without an entry in a language we
    translate to (all threads of the process, for as long as the block runs)."""
    global _misses
    found: set[str] = set()
    previous, _misses = _misses, found
    try:
        yield found
    finally:
        _misses = previous


def money(amount: int, currency: str, language: str | None = None) -> str:
    """``Rp 250.000`` in Indonesian for IDR (``1.234,50`` separators otherwise), ``IDR 250,000``
    in English."""
    language = language or current()
    exponent = DISPLAY_EXPONENTS.get(currency, 2)
    value = abs(amount) / (10**exponent) if exponent else abs(amount)
    text = f"{value:,.{exponent}f}"
    sign = "−" if amount < 0 else ""
    if language == "id":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
        return f"{sign}{'Rp' if currency == 'IDR' else currency} {text}"
    return f"{sign}{currency} {text}"
