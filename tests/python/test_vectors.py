"""Every shared vector in tests/vectors/*.json against the generated Python bindings,
one pytest case per vector. Mirrors core/tests/vectors.rs."""
import functools
import json
import os

import pytest

import tillgate_ffi as t

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VECTORS = os.environ.get("TILLGATE_VECTORS", os.path.join(ROOT, "tests", "vectors"))


# Members of a vector file, or of its cases, written for people, which no test reads (a
# case's name too, see Case). The Rust, Kotlin, Swift and JS runners allow the same names.
FOR_PEOPLE = {"description", "comment"}


class Vectors(dict):
    """A vector file that records which of its top-level members were read (v["cases"])."""

    for_people = FOR_PEOPLE

    def __init__(self, name, value):
        super().__init__(value)
        self.name = name
        self.read = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def unread(self):
        return sorted(k for k in self if k not in self.read and k not in self.for_people)


class Case(Vectors):
    """One case of a vector file, or an object in one that a test reads member by member
    (c.obj("expected")), that records which of its members were read (c["valid"],
    c.get("previous")). When its test is done (each_case), every member must have been
    read, but those for people: a file's (FOR_PEOPLE) and a case's name, which test ids
    and messages print. So a case that gains a member (an "error" where none was, a new
    expected value) fails until a test checks it. The Rust, Kotlin, Swift and JS runners
    have the same guard."""

    def __init__(self, where, value, for_people=FOR_PEOPLE | {"name"}):
        assert isinstance(value, dict), f"{where}: not a JSON object"
        super().__init__(where, value)
        self.for_people = for_people
        self.objs = {}

    def obj(self, key):
        if key not in self.objs:
            self.objs[key] = Case(f"{self.name} {key!r}", self[key], FOR_PEOPLE)
        return self.objs[key]

    def unread(self):
        return super().unread() + [f"{k}.{m}" for k, o in self.objs.items() for m in o.unread()]

    def check_read(self):
        unread = self.unread()
        assert unread == [], f"{self.name}: member(s) {unread} read by no Python test"


# The files this module read, by file name (see test_every_vector_file_is_read and
# test_every_vector_member_is_read).
LOADED = {}


def load(name):
    with open(os.path.join(VECTORS, name + ".json"), encoding="utf-8") as f:
        value = json.load(f)
    assert isinstance(value, dict), f"{name}.json: not a JSON object"
    LOADED[name + ".json"] = v = Vectors(name + ".json", value)
    return v


def each_case(v, key, id_key="name"):
    """Runs the test once for each case under key, given as a Case; a run that passes must
    also have read every member of its case (Case.check_read)."""
    items = v[key]
    assert items, f"no cases under {key}"
    cases = [Case(f"tests/vectors/{v.name} {key}[{i}]" + (f" {c['name']!r}" if "name" in c else ""), c)
             for i, c in enumerate(items)]

    def decorate(test):
        @functools.wraps(test)
        def run(c):
            test(c)
            c.check_read()

        return pytest.mark.parametrize("c", cases, ids=ids(items, id_key))(run)

    return decorate


def expect_err(code, fn, *args, **kwargs):
    with pytest.raises(t.TillgateError.Failed) as info:
        fn(*args, **kwargs)
    assert info.value.code == code, info.value.reason
    # Core's errors never carry what only a server's answer has.
    e = info.value
    assert (e.http_status, e.retry_after_ms, e.transient, e.auth) == (None, None, False, False), e
    return info.value


def fields_of(e):
    return [{"field": f.field, "code": f.code} for f in e.fields]


def ids(items, key="name"):
    return [str(c.get(key, i)) for i, c in enumerate(items)]


ED = load("ed25519")


@each_case(ED, "cases")
def test_ed25519(c):
    pk, msg, sig = (bytes.fromhex(c[k]) for k in ("publicKey", "message", "signature"))
    if c["valid"]:
        t.verify_ed25519(pk, msg, sig)
        key = t.SigningKey.from_seed(bytes.fromhex(c["secretKey"]))
        assert key.public_key() == pk
        assert key.sign_raw(msg) == sig
    else:
        expect_err(c["error"], t.verify_ed25519, pk, msg, sig)


AK = load("api_key")


@each_case(AK, "cases")
def test_api_key(c):
    if c["valid"]:
        assert t.validate_api_key(c["key"]) == c["key"]
    else:
        e = expect_err(c["error"], t.validate_api_key, c["key"])
        if "position" in c:
            assert e.position == c["position"]
            assert e.character == c["char"]


ALPHABETS = {"full": (t.ApiKeyAlphabet.FULL, AK["alphabet"]), "urlSafe": (t.ApiKeyAlphabet.URL_SAFE, AK["urlSafeAlphabet"])}


@pytest.mark.parametrize("which", ALPHABETS)
def test_generated_api_keys_use_exactly_their_alphabet(which):
    # The binding exposes no alphabet, so enough keys are generated to see every
    # character: 40 keys of 256 miss one of ~78 characters with odds below 1e-55.
    alphabet, chars = ALPHABETS[which]
    assert len(set(chars)) == len(chars), f"{which}: a character twice in {chars!r}"
    keys = [t.generate_api_key(256, alphabet) for _ in range(40)]
    for k in keys:
        assert len(k) == 256 and t.validate_api_key(k) == k
    assert "".join(sorted(set("".join(keys)))) == "".join(sorted(chars))
    assert len(t.generate_api_key(40, alphabet)) == 40
    expect_err("api_key_too_short", t.generate_api_key, 19, alphabet)


@pytest.mark.parametrize("ch", list(AK["reserved"]) or [None], ids=repr)
def test_every_reserved_character_is_refused(ch):
    # Every character the vectors call reserved, not only those with a case of their own.
    assert ch is not None, "no reserved characters in api_key.json"
    e = expect_err("api_key_reserved_char", t.validate_api_key, f"Abcdefghij{ch}0123456789")
    assert e.position == 10
    assert e.character == ch


UT = load("url_token")
PREFIX = {t.UrlTokenPrefix.OPEN_API: "OpenApi", t.UrlTokenPrefix.ANYWHERE: "Anywhere", t.UrlTokenPrefix.GNAP: "Gnap"}


def token_json(tok):
    return {
        "prefix": PREFIX[tok.prefix], "version": tok.version, "rmSystem": list(tok.rm_system),
        "rve": tok.rve, "params": [{"id": p.id, "value": p.value} for p in tok.params],
        "token": tok.token, "rest": tok.rest,
    }


@each_case(UT, "cases")
def test_url_token(c):
    if c["valid"]:
        tok = t.parse_url_token(c["path"])
        assert token_json(tok) == c["expected"]
        encoded = t.encode_url_token(tok)
        assert encoded == c["encoded"]
        assert t.parse_url_token(encoded) == tok
    else:
        e = expect_err(c["error"], t.parse_url_token, c["path"])
        assert e.position == c["position"]


AC = load("activation")
CORPORATE_ID_RULES = {
    "generic": t.CorporateIdRule.GENERIC,
    "swedishOrgNumber": t.CorporateIdRule.SWEDISH_ORG_NUMBER,
}


@each_case(AC, "cases")
def test_activation(c):
    r = c.obj("request")
    req = t.ActivationRequest(
        cash_register_name=r.get("cashRegisterName", ""), device_id=r.get("deviceId", ""),
        valid_from=r.get("validFrom", ""), valid_to=r.get("validTo", ""),
        corporate_id=r.get("corporateId", ""), application_package=r.get("applicationPackage", ""),
        country=r.get("country"),
        extras_json=None if r.get("extras") is None else json.dumps(r["extras"]),
    )
    # An unknown rule name fails: it is never read as another rule.
    assert c["corporateIdRule"] in CORPORATE_ID_RULES, f"unknown corporateIdRule {c['corporateIdRule']!r}"
    rule = CORPORATE_ID_RULES[c["corporateIdRule"]]
    if c["valid"]:
        ok = t.validate_activation_request(req, rule)
        e = c.obj("expected")
        assert (ok.corporate_id, ok.country, ok.valid_from, ok.valid_to) == (
            e["corporateId"], e["country"], e["validFrom"], e["validTo"])
    else:
        err = expect_err(c["error"], t.validate_activation_request, req, rule)
        assert fields_of(err) == c["fields"]


TX = load("transaction")


@each_case(TX, "cases")
def test_transaction(c):
    tx = t.transaction_from_json(json.dumps(c["transaction"]))
    if c["valid"]:
        t.validate_transaction(tx)
        assert t.transaction_canonical_json(tx) == c["canonical"]
        assert t.transaction_hash(tx) == c["hash"]
    else:
        err = expect_err(c["error"], t.validate_transaction, tx)
        assert fields_of(err) == c["fields"]


@each_case(TX, "unparsable")
def test_transaction_unparsable(c):
    expect_err("invalid_argument", t.transaction_from_json, c["json"])


PR = load("product")


@each_case(PR, "cases")
def test_product(c):
    p = t.product_from_json(c["id"], json.dumps(c["product"]))
    assert p.id == c["id"]
    if c["valid"]:
        t.validate_product(p)
        if "canonical" in c:
            assert t.product_to_json(p) == c["canonical"]
    else:
        err = expect_err(c["error"], t.validate_product, p)
        assert fields_of(err) == c["fields"]


@each_case(PR, "unparsable")
def test_product_unparsable(c):
    expect_err("invalid_argument", t.product_from_json, "p", c["json"])


DE = load("descriptor")
DKEYS = t.TrustedKeys.from_jwks_json(json.dumps(DE["jwks"]))


def descriptor_json(d):
    return {
        "iss": d.iss, "sub": d.sub, "iat": d.iat, "nbf": d.nbf, "exp": d.exp, "ver": d.ver,
        "activationId": d.activation_id, "cashRegisterName": d.cash_register_name,
        "deviceId": d.device_id, "corporateId": d.corporate_id, "country": d.country,
        "applicationPackage": d.application_package, "features": list(d.features),
        "status": d.status, "extras": json.loads(d.extras_json),
    }


def descriptor_from_json(o):
    return t.ActivationDescriptor(
        iss=o["iss"], sub=o["sub"], iat=o["iat"], nbf=o["nbf"], exp=o["exp"], ver=o["ver"],
        activation_id=o["activationId"], cash_register_name=o["cashRegisterName"],
        device_id=o["deviceId"], corporate_id=o["corporateId"], country=o["country"],
        application_package=o["applicationPackage"], features=o.get("features", []),
        status=o["status"], extras_json=json.dumps(o.get("extras", {})),
    )


@each_case(DE, "cases")
def test_descriptor(c):
    o = c.obj("options")
    options = t.VerifyOptions(
        trusted_time_floor=o.get("trustedTimeFloor"), clock_tolerance_secs=o.get("clockToleranceSecs"),
        leeway_secs=o.get("leewaySecs"), expected_device_id=o.get("expectedDeviceId"),
        expected_application_package=o.get("expectedApplicationPackage"),
    )
    if c["valid"]:
        d = t.verify_descriptor(c["jws"], DKEYS, c["now"], options)
        assert descriptor_json(d.claims) == c["expected"]
    else:
        expect_err(c["error"], t.verify_descriptor, c["jws"], DKEYS, c["now"], options)


@each_case(DE, "jwksCases")
def test_jwks(c):
    text = json.dumps(c["jwks"])
    if c["valid"]:
        t.TrustedKeys.from_jwks_json(text)
    else:
        expect_err(c["error"], t.TrustedKeys.from_jwks_json, text)


@each_case(DE, "signing")
def test_descriptor_signing(c):
    key = t.SigningKey.from_seed(bytes.fromhex(c["seed"]))
    assert key.kid() == c["kid"]
    assert t.sign_descriptor(descriptor_from_json(c.obj("claims")), key) == c["jws"]


RE = load("receipt")
RKEYS = t.TrustedKeys.from_jwks_json(json.dumps(RE["jwks"]))


@each_case(RE, "cases")
def test_receipt_chain(c):
    if c["valid"]:
        assert len(t.verify_receipt_chain(c["receipts"], RKEYS, c.get("previous"))) == c["count"]
    else:
        e = expect_err(c["error"], t.verify_receipt_chain, c["receipts"], RKEYS, c.get("previous"))
        assert e.index == c["index"]


@each_case(RE, "witnessed")
def test_receipt_chain_witnessed(c):
    if c["valid"]:
        assert len(t.verify_receipt_chain_witnessed(c["receipts"], RKEYS, c["witness"])) == c["count"]
    else:
        expect_err(c["error"], t.verify_receipt_chain_witnessed, c["receipts"], RKEYS, c["witness"])


@each_case(RE, "advance")
def test_advances_witness(c):
    if c["valid"]:
        assert t.advances_witness(c.get("current"), c["received"], RKEYS) is c["advances"]
    else:
        expect_err(c["error"], t.advances_witness, c.get("current"), c["received"], RKEYS)


@each_case(RE, "links")
def test_receipt_link(c):
    assert t.receipt_link(c["receipt"]) == c["link"]


DK = load("dynamic_key")


def params(p):
    return t.DynamicKeyParams(memory_kib=p["memoryKib"], iterations=p["iterations"], parallelism=p["parallelism"])


@each_case(DK, "derive", "login")
def test_dynamic_key_derive(c):
    pair = t.derive_dynamic_key_pair(c["system"], c["login"], c["password"], params(c.obj("params")))
    assert pair.seed().hex() == c["seed"]
    assert pair.public_key().hex() == c["publicKey"]


@each_case(DK, "create")
def test_dynamic_key_create(c):
    pair = t.DynamicKeyPair.from_seed(c["system"], c["login"], bytes.fromhex(c["seed"]))
    assert t.create_dynamic_api_key_with_nonce(pair, c["now"], bytes.fromhex(c["nonce"])) == c["key"]


@each_case(DK, "deriveRefused")
def test_dynamic_key_derive_refused(c):
    expect_err(c["error"], t.derive_dynamic_key_pair, c["system"], c["login"], c["password"], params(c.obj("params")))


@each_case(DK, "verify")
def test_dynamic_key_verify(c):
    args = (c["key"], bytes.fromhex(c["publicKey"]), c["system"], c["now"], c["windowSecs"])
    if c["valid"]:
        claims = t.verify_dynamic_api_key(*args)
        e = c.obj("expected")
        assert (claims.login, claims.issued_at, claims.nonce.hex()) == (e["login"], e["issuedAt"], e["nonce"])
    else:
        expect_err(c["error"], t.verify_dynamic_api_key, *args)


ST = load("server_time")
SKEYS = t.TrustedKeys.from_jwks_json(json.dumps(ST["jwks"]))


@each_case(ST, "cases")
def test_server_time(c):
    if c["valid"]:
        assert t.verify_server_time(c["jws"], SKEYS, c.get("expectedNonce")).iat == c["iat"]
    else:
        expect_err(c["error"], t.verify_server_time, c["jws"], SKEYS, c.get("expectedNonce"))


def test_generated_signing_key_signs_a_descriptor_the_app_verifies():
    key = t.generate_signing_key()
    keys = t.TrustedKeys()
    assert keys.add_raw_with_thumbprint(key.public_key()) == key.kid()
    d = descriptor_from_json(DE["signing"][0]["claims"])
    ok = t.verify_descriptor(t.sign_descriptor(d, key), keys, d.nbf, t.VerifyOptions())
    assert ok.kid == key.kid()
    assert descriptor_json(ok.claims) == DE["signing"][0]["claims"] | {"features": list(d.features)}


def test_dynamic_key_round_trip_and_argument_errors():
    pair = t.derive_dynamic_key_pair("1,2,3,4", "anna", "pw", t.DynamicKeyParams(memory_kib=64, iterations=1, parallelism=1))
    key = t.create_dynamic_api_key(pair, 1_700_000_000)
    assert t.verify_dynamic_api_key(key, pair.public_key(), "1,2,3,4", 1_700_000_010, 300).login == "anna"
    expect_err("invalid_argument", t.create_dynamic_api_key_with_nonce, pair, 1, b"abc")


def printed(value):
    """Every way Python prints a value: print() and f-strings, repr(), containers, logging's %s."""
    return [str(value), f"{value}", repr(value), str([value]), str({"v": value}), "%s" % (value,), "%r" % (value,)]


def test_an_activation_prints_without_its_api_key():
    secret = "Abcdefghij0123456789!@$SecretKey"
    a = t.Activation(activation_id="act_1", production_number="TG-7Q2M-K4PX", api_key=secret,
                     status="pending", valid_from="2025-01-01T00:00:00Z", valid_to=None)
    for shown in printed(a):
        assert secret not in shown, shown
        for part in ("<redacted>", "act_1", "TG-7Q2M-K4PX", "pending", "2025-01-01T00:00:00Z"):
            assert part in shown, shown
    # Only printing changes: the key is there to store, and equality still holds.
    assert a.api_key == secret
    assert a == t.Activation(activation_id="act_1", production_number="TG-7Q2M-K4PX", api_key=secret,
                             status="pending", valid_from="2025-01-01T00:00:00Z", valid_to=None)


def test_a_url_token_prints_without_its_access_token():
    tok = t.parse_url_token("/OpenApi_1,2,3,4$R20201201134216$$Mysecrettoken/Products")
    assert tok.token == "Mysecrettoken"
    for shown in printed(tok):
        assert "Mysecrettoken" not in shown, shown
        for part in ("<redacted>", "OpenApi", "20201201134216", "/Products"):
            assert part in shown, shown
    assert t.encode_url_token(tok) == "/OpenApi_1,2,3,4$R20201201134216$$Mysecrettoken/Products"


# What the module read at import, before any test runs (a member read only inside a test
# would not count, so every test reads its members through module-level names).
UNREAD = {name: v.unread() for name, v in LOADED.items()}


def test_every_vector_file_is_read():
    """Every file in tests/vectors/ is loaded by this module (at import, before any test
    runs), so that a new file cannot go unchecked in Python."""
    files = {f for f in os.listdir(VECTORS) if f.endswith(".json")}
    assert files, f"no vector files in {VECTORS}"
    assert sorted(files - set(LOADED)) == [], f"vector files no Python test reads: {sorted(files - set(LOADED))}"


def test_every_vector_member_is_read():
    """Every top-level member of every file (a list of cases, a key set, an alphabet) is
    read by this module, but those FOR_PEOPLE: a new one cannot go unchecked in Python."""
    unread = [f"{name}: {k}" for name, keys in sorted(UNREAD.items()) for k in keys]
    assert unread == [], f"top-level members of tests/vectors no Python test reads: {unread}"
