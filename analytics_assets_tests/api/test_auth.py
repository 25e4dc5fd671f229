"""OAuth2 client credentials: one shared token, renewed ahead of expiry, on a 401, and on retries."""

import copy

import pytest

from analytics_assets.api.definition import BUILT_IN_CONFIG, parse_definition
from analytics_assets.errors import CredentialsRejected, RetriesExhausted, TokenEndpointError, TokenRejected
from analytics_assets_tests.conftest import assert_table_matches, settings_for, table_checksum


def unauthorized(api) -> int:
    return api.request_count(path="/v1/resource", status=401)


def test_one_token_for_the_whole_run(demo_api, syncer):
    syncer.run(demo_api)
    assert demo_api.tokens_issued == 1
    assert demo_api.request_count(path="/v1/resource") == 4


def test_token_is_renewed_before_it_expires(make_api, syncer):
    """6 s tokens, a 1 s margin and ~7 s of paging: renewed at least once, never rejected. (A token
    is renewed at most every 5 s on its expiry's account: shorter lives are tested below.)"""
    api = make_api(records=3000, days=3, token_lifetime=6, latency_ms=220)
    stats = syncer.run(api, settings=settings_for(api, token_refresh_margin=1.0))
    assert_table_matches(syncer.db, api.all_records())
    assert api.tokens_issued >= 2 and stats.token_refreshes == api.tokens_issued - 1
    assert unauthorized(api) == 0


def test_revoked_token_mid_run_is_replaced_once(demo_api, syncer):
    demo_api.faults.on_page(2, lambda api: api.revoke_tokens())
    stats = syncer.run(demo_api)
    assert_table_matches(syncer.db, demo_api.all_records())
    assert unauthorized(demo_api) == 1
    assert demo_api.tokens_issued == 2 and stats.token_refreshes == 1


def test_second_401_fails_clearly_and_leaves_table_unchanged(demo_api, syncer):
    syncer.run(demo_api)
    before = table_checksum(syncer.db)
    demo_api.update_record(3, name="changed-upstream")
    demo_api.faults.queue("unauthorized", times=2, after=1)
    with pytest.raises(TokenRejected, match="401 twice"):
        syncer.run(demo_api)
    assert table_checksum(syncer.db) == before


def test_every_retry_carries_a_valid_token(make_api, syncer):
    """dlt re-sends a retried request with the token it was first prepared with; with 5 s tokens
    and 3 s Retry-After waits that token is dead by the later attempts."""
    api = make_api(records=300, days=3, token_lifetime=5)
    api.faults.queue("status", status=503, retry_after=3, times=3, after=1)
    syncer.run(api)
    assert_table_matches(syncer.db, api.all_records())
    assert unauthorized(api) == 0
    assert api.tokens_issued >= 2


def test_rejected_credentials_fail_at_once_without_leaking_the_secret(demo_api, syncer):
    secret = "wrong-secret-7f3a9c"
    with pytest.raises(CredentialsRejected) as failure:
        syncer.run(demo_api, settings=settings_for(demo_api, client_secret=secret))
    message = str(failure.value)
    assert demo_api.token_url in message and "ANALYTICS_CLIENT_SECRET" in message
    assert secret not in message and secret not in repr(failure.value.__context__)
    assert demo_api.request_count(path="/oauth/token") == 1
    assert demo_api.request_count(path="/v1/resource") == 0


def test_token_endpoint_5xx_is_retried(demo_api, syncer):
    demo_api.faults.queue("status", status=503, times=3, path="/oauth/token")
    syncer.run(demo_api)
    assert_table_matches(syncer.db, demo_api.all_records())
    assert demo_api.request_count(path="/oauth/token") == 4


def test_token_endpoint_down_fails_clearly(demo_api, syncer):
    demo_api.faults.queue("status", status=503, times=4, path="/oauth/token")
    with pytest.raises(RetriesExhausted, match="POST /oauth/token still failed after 4 attempts.*HTTP 503"):
        syncer.run(demo_api)


def test_auth_object_repr_hides_secrets(demo_api):
    from analytics_assets.api.definition import built_in_definition
    from analytics_assets.api.client import ApiClient
    from analytics_assets.api.stats import SyncStats

    settings = settings_for(demo_api)
    with ApiClient(built_in_definition(), settings, SyncStats()) as client:
        client.auth.token()
        for text in (repr(client.auth), str(client.auth), repr(settings)):
            assert demo_api.config.client_secret not in text and str(client.auth.access_token) not in text


def test_a_refusal_shows_the_providers_reason_not_the_secret(make_api, syncer):
    """A careless provider echoes the request in its error: the reason it gives is shown, the
    credentials in it are not."""
    api = make_api(records=10)
    api.faults.queue("echo_credentials", path="/oauth/token")
    with pytest.raises(CredentialsRejected) as failure:
        syncer.run(api)
    message = str(failure.value)
    assert "invalid_client: bad client" in message
    assert api.config.client_secret not in message and "client_secret=" not in message


def test_a_token_endpoint_that_is_not_there_names_the_token_url_setting(demo_api, syncer):
    with pytest.raises(TokenEndpointError, match=r"answered HTTP 404.*Check ANALYTICS_TOKEN_URL"):
        syncer.run(demo_api, settings=settings_for(demo_api, token_url=demo_api.base_url + "/oauth/wrong"))
    assert demo_api.request_count(path="/v1/resource") == 0


def test_the_token_request_is_never_redirected(make_api, syncer):
    """A 307 would have the client post its secret again, wherever the Location says."""
    elsewhere = make_api(records=10)
    api = make_api(records=10)
    api.faults.queue("redirect", path="/oauth/token", location=elsewhere.token_url)
    with pytest.raises(TokenEndpointError, match="redirect to 127.0.0.1; the token request is never redirected"):
        syncer.run(api)
    assert elsewhere.requests == []


def test_basic_client_authentication_sends_no_credentials_in_the_form(make_api, syncer):
    """RFC 6749 §2.3.1: id and secret form-urlencoded, then HTTP Basic; the demo refuses a secret in
    the form in this mode."""
    api = make_api(records=300, days=3, token_auth_method="client_secret_basic",
                   client_id="team:a+b", client_secret="p%ss+w:rd ok")
    config = copy.deepcopy(BUILT_IN_CONFIG)
    config["client"]["auth"]["token_endpoint_auth_method"] = "client_secret_basic"
    syncer.run(api, definition=parse_definition(config, "test")[0])
    assert_table_matches(syncer.db, api.all_records())


@pytest.mark.parametrize("auth_method", ["client_secret_post", "client_secret_basic"])
@pytest.mark.parametrize("echo", ["secret", "body", "authorization"])
@pytest.mark.parametrize("position", [0, 180, 390])
def test_a_reason_echoing_the_credentials_shows_none_of_them(make_api, syncer, auth_method, echo, position):
    """The provider's `error_description` repeats what it was sent, the secret placed anywhere in it:
    as itself, in the form (form-urlencoded), or in the Basic header (base64 of the id:secret pair).
    Masked in the whole text first, then shortened: no part of any spelling shows."""
    import base64
    from urllib.parse import quote, quote_plus

    client_id, secret = "team:a+b", "S3cr3t+/ =tail-7f3a9c"
    api = make_api(records=10, client_id=client_id, client_secret=secret,
                   token_auth_method="any" if auth_method == "client_secret_post" else auth_method)
    api.faults.queue("token_error_echo", echo=echo, position=position)
    config = copy.deepcopy(BUILT_IN_CONFIG)
    config["client"]["auth"]["token_endpoint_auth_method"] = auth_method
    with pytest.raises(CredentialsRejected) as failure:
        syncer.run(api, definition=parse_definition(config, "test")[0])
    message = str(failure.value)
    assert "invalid_client" in message
    carried = echo == "secret" or (echo == "body") == (auth_method == "client_secret_post")
    if carried and position < 390:
        assert "***" in message  # the echo of it was found, and masked, not cut away
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    for form in (secret, quote_plus(secret), quote(secret, safe=""), base64.b64encode(pair.encode()).decode()):
        for piece in (form[:12], form[-12:]):  # no half of it either
            assert piece not in message, (form, message)


def test_a_token_redirect_within_the_origin_is_not_followed(make_api, syncer):
    """Same scheme, host and port: the secret would still be posted where the Location says."""
    api = make_api(records=10)
    api.faults.queue("redirect", path="/oauth/token", location=api.base_url + "/v1/resource")
    with pytest.raises(TokenEndpointError, match="answered HTTP 307.*never redirected.*ANALYTICS_TOKEN_URL"):
        syncer.run(api)
    assert api.request_count(path="/oauth/token") == 1
    assert api.request_count(path="/v1/resource") == 0, "the redirect's target must receive nothing"


# -- what the token endpoint answers is checked when it arrives -------------------------------------


@pytest.mark.parametrize("token", [None, "abc\r\nX-Injected: 1", "two words", "t\u00f6ken", "tab\there", "nul\x00",
                                   16 * 1024 + 1])
def test_a_token_a_header_cannot_carry_is_refused_when_received(make_api, syncer, token):
    """CR LF (the fault's default: a valid token and a line break), other whitespace, non-ASCII,
    control characters, or more than ANALYTICS_MAX_TOKEN_BYTES: refused naming the token endpoint,
    before it is sent anywhere, without quoting it."""
    api = make_api(records=10)
    options = {} if token is None else {"size": token} if isinstance(token, int) else {"value": token}
    api.faults.queue("token_value", **options)
    with pytest.raises(TokenEndpointError) as failure:
        syncer.run(api)
    message = str(failure.value)
    assert api.token_url in message and "ANALYTICS_TOKEN_URL" in message
    assert ("ANALYTICS_MAX_TOKEN_BYTES" in message) == isinstance(token, int)
    (issued,) = api.issued_tokens
    assert issued not in message and issued.strip()[:12] not in message and issued.strip()[-12:] not in message
    assert api.request_count(path="/v1/resource") == 0, "the token must not be sent"


@pytest.mark.parametrize(("size", "limit"), [(16 * 1024, None), (5000, None), (40_000, 65_536)])
def test_a_long_token_within_the_setting_is_used(make_api, syncer, size, limit):
    api = make_api(records=300, days=3)
    api.faults.queue("token_value", size=size)
    overrides = {"max_token_bytes": limit} if limit else {}
    syncer.run(api, settings=settings_for(api, **overrides))
    assert_table_matches(syncer.db, api.all_records())
    assert api.tokens_issued == 1


@pytest.mark.parametrize("value", ["NaN", "1e308", "-5", '"NaN"', "0", "true", '"soon"', "1e400", "31536001"])
def test_an_expires_in_that_is_no_lifetime_is_taken_for_a_missing_one(make_api, syncer, value):
    """Not a finite number of seconds between 1 and a year: the run says so, naming the token
    endpoint, and takes the token to last `default_token_expiration`; one token serves the run
    (a negative or zero lifetime does not mean a token request per API request)."""
    api = make_api(records=3000, days=3, latency_ms=20)
    api.faults.queue("expires_in_value", value=value)
    warnings: list[str] = []
    syncer.run(api, warn=warnings.append)
    assert_table_matches(syncer.db, api.all_records())
    assert api.tokens_issued == 1 and api.request_count(path="/v1/resource") > 30
    (warning,) = warnings
    assert api.token_url in warning and "expires_in=" in warning and "default_token_expiration" in warning


def test_a_token_said_to_last_a_second_is_renewed_at_most_every_five_seconds(make_api, syncer):
    """`expires_in: 1` on every token, which in fact last an hour: not a token request every second
    of a ~4 s run, one for each 5 s begun; and the run's log says why."""
    import time

    api = make_api(records=3000, days=3, latency_ms=120)
    api.faults.queue("expires_in_value", value="1", times=100)
    warnings: list[str] = []
    started = time.monotonic()
    syncer.run(api, warn=warnings.append)
    elapsed = time.monotonic() - started
    assert_table_matches(syncer.db, api.all_records())
    assert elapsed > 2 and api.tokens_issued <= 1 + elapsed // 5, (api.tokens_issued, elapsed)
    assert any("tokens last 1 s" in warning and "at most every 5 s" in warning for warning in warnings)


def test_tokens_that_live_shorter_than_the_renewal_floor_are_renewed_when_refused(make_api, syncer):
    """A provider whose tokens do die after 1 s: each is used until the API refuses it (401), then
    replaced once; the run lands everything."""
    api = make_api(records=1000, days=3, token_lifetime=1, latency_ms=150)
    syncer.run(api)
    assert_table_matches(syncer.db, api.all_records())
    assert 2 <= api.tokens_issued <= unauthorized(api) + 1
