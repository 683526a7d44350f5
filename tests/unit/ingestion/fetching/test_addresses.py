"""Which URLs the fetcher refuses before any connection: every spelling of an internal address."""

from __future__ import annotations

import ipaddress

import pytest

from kglab_ingestion.fetching import UnsafeUrlError, is_public_address, validate_public_url
from kglab_ingestion.fetching.addresses import check_resolved_address, literal_address


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/a?b=1", "https://example.com/a?b=1"),
        ("  http://Example.COM/path  ", "http://example.com/path"),
        ("http://bücher.de/", "http://xn--bcher-kva.de/"),
        ("http://8.8.8.8/", "http://8.8.8.8/"),
        ("http://[2606:4700:4700::1111]/", "http://[2606:4700:4700::1111]/"),
        ("http://[64:ff9b::808:808]/", "http://[64:ff9b::808:808]/"),
        ("http://cafe.be/", "http://cafe.be/"),
    ],
)
def test_public_urls_pass_normalised(url: str, expected: str) -> None:
    assert validate_public_url(url) == expected


INTERNAL = [
    "http://127.0.0.1/",
    "http://127.1/",  # short form
    "http://2130706433/",  # decimal
    "http://0x7f000001/",  # hex
    "http://0x7f.1/",  # mixed
    "http://017700000001/",  # octal
    "http://0/",  # 0.0.0.0
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",  # carrier-grade NAT
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata, link-local
    "http://224.0.0.1/",  # multicast
    "http://240.0.0.1/",  # reserved
    "http://255.255.255.255/",
    "http://[::1]/",
    "http://[::]/",
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped IPv6
    "http://[::ffff:a9fe:a9fe]/",  # mapped metadata address, hex spelling
    "http://[fe80::1]/",
    "http://[fc00::1]/",  # unique local
    "http://[ff02::1]/",  # multicast
    "http://[2002:7f00:1::]/",  # 6to4 around 127.0.0.1
    "http://[64:ff9b::a00:1]/",  # NAT64 around 10.0.0.1
    "http://localhost/",
    "http://api.localhost:8080/",
]


@pytest.mark.parametrize("url", INTERNAL)
def test_internal_addresses_in_any_spelling_are_refused(url: str) -> None:
    with pytest.raises(UnsafeUrlError, match="private, loopback or otherwise internal") as caught:
        validate_public_url(url)
    assert caught.value.status == 422


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("", "Give a web address that starts with http:// or https://."),
        ("ftp://example.com/file", "Only http:// and https:// addresses can be fetched."),
        ("file:///etc/passwd", "Only http:// and https:// addresses can be fetched."),
        ("javascript:alert(1)", "Only http:// and https:// addresses can be fetched."),
        ("gopher://example.com:70/", "Only http:// and https:// addresses can be fetched."),
        (
            "http://user:pw@example.com/",
            "Addresses with a user name or password in them cannot be fetched.",
        ),
        (
            "http://example.com\\@evil.example/",
            "Addresses with a user name or password in them cannot be fetched.",
        ),
        ("http://exa mple.com/", "The address contains spaces or control characters."),
        ("http://example.com/\r\nHost: x", "The address contains spaces or control characters."),
        ("http:///path", "The address has no host name."),
        ("http://example.com:99999/", "The port 99999 is not a valid port number."),
        ("http://%31%32%37.0.0.1/", "'%31%32%37.0.0.1' is not a valid host name."),
    ],
)
def test_malformed_or_hostile_urls_get_a_readable_reason(url: str, detail: str) -> None:
    with pytest.raises(UnsafeUrlError) as caught:
        validate_public_url(url)
    assert caught.value.detail == detail


def test_overly_long_urls_are_refused() -> None:
    url = "https://example.com/" + "a" * 3000
    with pytest.raises(UnsafeUrlError, match="characters long; the limit is 2048"):
        validate_public_url(url)
    assert validate_public_url(url, max_length=4096) == url


def test_allowing_private_addresses_is_explicit() -> None:
    assert validate_public_url("http://127.0.0.1:8080/", allow_private=True)
    loopback = (ipaddress.ip_network("127.0.0.1/32"),)
    assert validate_public_url("http://127.0.0.1:8080/", allowlist=loopback)
    with pytest.raises(UnsafeUrlError):
        validate_public_url("http://10.0.0.1/", allowlist=loopback)


def test_resolved_addresses_are_checked_the_same_way() -> None:
    check_resolved_address("example.com", "93.184.215.14")
    check_resolved_address("example.com", "2606:2800:21f:cb07:6820:80da:af6b:8b2c")
    for address in ("127.0.0.1", "::ffff:10.0.0.1", "fe80::1%eth0", "169.254.169.254"):
        with pytest.raises(UnsafeUrlError, match=r"The host example\.com cannot be fetched"):
            check_resolved_address("example.com", address)
    with pytest.raises(UnsafeUrlError, match="unusable address"):
        check_resolved_address("example.com", "not-an-address")


def test_numeric_host_spellings_are_read_like_the_c_library() -> None:
    assert literal_address("2130706433") == ipaddress.ip_address("127.0.0.1")
    assert literal_address("0x7f.0.0.1") == ipaddress.ip_address("127.0.0.1")
    assert literal_address("example.com") is None
    assert literal_address("deadbeef") is None
    assert is_public_address(ipaddress.ip_address("1.1.1.1"))
    assert not is_public_address(ipaddress.ip_address("2001:db8::1"))  # documentation range
