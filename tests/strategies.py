"""Hypothesis strategies for what a sender controls in a signature header."""

from hypothesis import strategies as st

HEX = "0123456789abcdefABCDEF"

# Timestamps as a sender may write them: plausible, huge (hundreds of digits), negative,
# non-ASCII digits ("²", "١٢٣") and plain junk.
timestamps = st.one_of(
    st.integers(0, 10**12).map(str),
    st.integers(-(10**600), 10**600).map(str),
    st.integers(0, 600).map(lambda n: "9" * n),
    st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=30),
    st.text(max_size=20),
)
# v1 values: a real length in hex, any length in hex, or anything at all.
signatures = st.one_of(
    st.text(HEX, min_size=64, max_size=64),
    st.text(HEX, max_size=300),
    st.text(max_size=80),
)
parts = st.one_of(
    st.builds("t={}".format, timestamps),
    st.builds("v1={}".format, signatures),
    st.builds("{}={}".format, st.sampled_from(["v0", "T", " t ", "v1 ", ""]), st.text(max_size=20)),
    st.text(max_size=20),
)
signature_headers = st.one_of(
    st.builds("t={},v1={}".format, timestamps, signatures),
    st.lists(parts, max_size=40).map(",".join),
    st.text(max_size=80),
)
