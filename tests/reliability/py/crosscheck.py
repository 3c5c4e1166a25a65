#!/usr/bin/env python3
"""Independent cross-checks of Tillgate's signatures with code nobody on the project wrote.

1. JOSE: descriptors, receipts and signed server times made by a running tillgate-server
   are verified with PyJWT (+ `cryptography`) and with node `jose`; the receipt chain is
   re-checked here (seq, prev = SHA-256 link, sub). Tokens signed by PyJWT verify with
   tillgate-core (through the `tillgate-crosscheck` helper).
2. libsodium -> core: Ed25519 signatures made by PyNaCl (libsodium) verify with core.
3. Wycheproof-style refusals: cases generated here with exact arithmetic, following the
   structure of Wycheproof's `ed25519_test.json` (special R/S values, S + k*L
   malleability, small-order and non-canonical R and public keys, R with a torsion
   component and a recomputed S, truncated and padded signatures, every single-bit flip).
   Each case has an expected verdict written here; core must match it, and libsodium's
   verdict is compared too.
4. Dynamic keys: every `derive` vector of tests/vectors/dynamic_key.json recomputed here,
   the seed with argon2-cffi (the reference Argon2 C code: Argon2id v1.3 over the
   password, salt SHA-256("tillgate/dk1/salt" 0x00 system 0x00 login), 32 bytes) and the
   public key from the seed with PyNaCl (libsodium).

Usage: crosscheck.py --base URL --admin-key KEY --crosscheck BIN --jose-script FILE
Prints one line per check group and `crosscheck: N passed, N failed`; exits 1 on failure.
"""

import argparse
import base64
import datetime
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import jwt
import nacl
from argon2.low_level import Type as Argon2Type
from argon2.low_level import hash_secret_raw
import nacl.exceptions
import nacl.signing
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.exceptions import InvalidSignature
from jwt.algorithms import OKPAlgorithm

PASSED = 0
FAILED = 0


def check(ok, what):
    global PASSED, FAILED
    if ok:
        PASSED += 1
    else:
        FAILED += 1
        print(f"  FAIL {what}")


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


# ---- HTTP ---------------------------------------------------------------------------


def http(base, method, path, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    h = {"content-type": "application/json"} if body is not None else {}
    h.update(headers or {})
    req = urllib.request.Request(base + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def server_artifacts(base, admin_key):
    today = datetime.datetime.now(datetime.timezone.utc).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    st, a = http(base, "POST", "/activations-advanced", {
        "cashRegisterName": "Kassa X", "deviceId": "crosscheck-dev",
        "validFrom": today.strftime(fmt),
        "validTo": (today + datetime.timedelta(days=30)).strftime(fmt),
        "corporateId": "556036-0793", "applicationPackage": "com.example.pos",
        "extras": {"shop": 7, "name": "Kaffebaren åäö"},
    })
    assert st == 201, a
    st, _ = http(base, "POST", f"/admin/activations/{a['activationId']}/approve", {},
                 {"authorization": f"Bearer {admin_key}"})
    assert st == 200
    auth = {"authorization": f"Bearer {a['apiKey']}"}
    _, jwks = http(base, "GET", "/.well-known/jwks.json")
    _, code = http(base, "GET", "/activations/activation-code", headers=auth)
    nonce = b64u(os.urandom(12))
    _, hs = http(base, "GET", f"/auth/handshake?nonce={nonce}", headers=auth)
    for i in range(6):
        st, _ = http(base, "POST", "/transactions", {
            "type": "sale", "currency": "SEK", "total": 1000 + i,
            "vat": [{"rate": 2500, "amount": 200}],
            "items": [{"name": f"Kaffe {i}", "quantity": 1, "amount": 1000 + i}],
        }, {**auth, "idempotency-key": f"xc-{i}"})
        assert st == 201
    _, txs = http(base, "GET", "/transactions?limit=1000", headers=auth)
    return {
        "activation": a, "jwks": jwks, "descriptor": code["descriptor"],
        "signedTime": hs["signedTime"], "nonce": nonce, "transactions": txs["items"],
    }


# ---- JOSE ---------------------------------------------------------------------------


def jose_checks(art, crosscheck_bin, jose_script):
    now = int(time.time())
    jwk = art["jwks"]["keys"][0]
    native = "Ed25519" in jwt.algorithms.get_default_algorithms()
    jws_api = jwt.PyJWS()
    if not native:
        # PyJWT predates RFC 9864: it knows this algorithm only as "EdDSA". Register its
        # own Ed25519 implementation (OKPAlgorithm, on `cryptography`) under the new name.
        jws_api.register_algorithm("Ed25519", OKPAlgorithm())
    key = OKPAlgorithm.from_jwk(json.dumps(jwk))
    raw_pub = Ed25519PublicKey.from_public_bytes(unb64u(jwk["x"]))
    print(f"  PyJWT {jwt.__version__}: alg Ed25519 "
          + ("built in" if native else "not built in (pre-RFC 9864); PyJWT's OKPAlgorithm registered under that name"))

    def pyjwt_verify(token, typ):
        d = jws_api.decode_complete(token, key=key, algorithms=["Ed25519"])
        assert d["header"]["typ"] == typ and d["header"]["kid"] == jwk["kid"]
        return json.loads(d["payload"])

    def raw_verify(token):
        h, p, s = token.split(".")
        raw_pub.verify(unb64u(s), f"{h}.{p}".encode())

    # Descriptor.
    claims = pyjwt_verify(art["descriptor"], "tillgate-descriptor+jwt")
    check(claims["sub"] == art["activation"]["productionNumber"]
          and claims["nbf"] <= now < claims["exp"]
          and claims["deviceId"] == "crosscheck-dev"
          and claims["extras"]["name"] == "Kaffebaren åäö", "PyJWT descriptor claims")
    raw_verify(art["descriptor"])
    check(True, "cryptography raw Ed25519 on the descriptor")
    # Signed time, with the nonce echoed.
    t = pyjwt_verify(art["signedTime"], "tillgate-time+jwt")
    check(t["nonce"] == art["nonce"] and abs(t["iat"] - now) < 300, "PyJWT signed time")
    # Receipts: signatures, then the chain rules re-checked independently.
    prev = ""
    for i, tx in enumerate(art["transactions"]):
        r = pyjwt_verify(tx["receipt"], "tillgate-receipt+jwt")
        raw_verify(tx["receipt"])
        check(r["seq"] == i + 1 and r["prev"] == prev and r["txid"] == tx["id"]
              and r["txh"] == tx["txh"] and r["total"] == tx["total"]
              and r["sub"] == art["activation"]["productionNumber"],
              f"receipt {i + 1}: chain rules")
        prev = b64u(hashlib.sha256(tx["receipt"].encode()).digest())
    # A tampered token is refused by PyJWT and by the raw primitive.
    h, p, s = art["descriptor"].split(".")
    body = json.loads(unb64u(p))
    body["exp"] += 86400 * 365
    forged = f"{h}.{b64u(json.dumps(body).encode())}.{s}"
    try:
        pyjwt_verify(forged, "tillgate-descriptor+jwt")
        check(False, "PyJWT accepted a tampered descriptor")
    except jwt.exceptions.InvalidSignatureError:
        check(True, "")
    try:
        raw_verify(forged)
        check(False, "cryptography accepted a tampered descriptor")
    except InvalidSignature:
        check(True, "")
    print(f"  PyJWT + cryptography: descriptor, signed time, {len(art['transactions'])} chained receipts verified; tampering refused")

    # node jose.
    tokens = [{"jws": art["descriptor"], "typ": "tillgate-descriptor+jwt", "valid": True},
              {"jws": art["signedTime"], "typ": "tillgate-time+jwt", "valid": True},
              {"jws": forged, "typ": "tillgate-descriptor+jwt", "valid": False}]
    tokens += [{"jws": tx["receipt"], "typ": "tillgate-receipt+jwt", "valid": True}
               for tx in art["transactions"]]
    out = subprocess.run(["node", jose_script], input=json.dumps({"jwks": art["jwks"], "tokens": tokens}),
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        check(False, f"node jose: {out.stderr.strip()}")
    else:
        res = json.loads(out.stdout)
        for tok, r in zip(tokens, res["results"]):
            check(r["ok"] == tok["valid"], f"node jose {tok['typ']}: {r}")
        print(f"  node jose {res['version']}: {len(tokens)} tokens, verdicts as expected (alg Ed25519 natively)")

    # The other direction: tokens signed by PyJWT verify with core.
    priv = Ed25519PrivateKey.generate()
    pub_raw = priv.public_key().public_bytes_raw()
    kid = "pyjwt-key"
    jwks = {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": b64u(pub_raw), "kid": kid}]}
    desc = dict(claims)
    tok_eddsa = jwt.encode(desc, priv, algorithm="EdDSA",
                           headers={"kid": kid, "typ": "tillgate-descriptor+jwt"})
    tok_ed25519 = jws_api.encode(json.dumps(desc).encode(), priv, algorithm="Ed25519",
                                 headers={"kid": kid, "typ": "tillgate-descriptor+jwt"})
    tok_hs = jwt.encode(desc, b64u(pub_raw) + "-as-an-hmac-secret", algorithm="HS256",
                        headers={"kid": kid, "typ": "tillgate-descriptor+jwt"})
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(jwks, f)
    try:
        out = subprocess.run([crosscheck_bin, "descriptor", f.name, str(now)],
                             input="\n".join([tok_eddsa, tok_ed25519, tok_hs]) + "\n",
                             capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(f.name)
    verdicts = out.stdout.split()
    check(verdicts == ["ok", "ok", "unsupported_algorithm"],
          f"core on PyJWT-signed descriptors: {verdicts} {out.stderr}")
    print(f"  core on PyJWT-signed descriptors (EdDSA, Ed25519, HS256): {verdicts}")


# ---- Ed25519 arithmetic (RFC 8032 section 5.1, exact integers) -------------------------

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def inv(x):
    return pow(x, P - 2, P)


def pt_add(a, b):
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    A = (y1 - x1) * (y2 - x2) % P
    B = (y1 + x1) * (y2 + x2) % P
    C = 2 * t1 * t2 * D % P
    Dd = 2 * z1 * z2 % P
    E, F, G, H = B - A, Dd - C, Dd + C, B + A
    return (E * F % P, G * H % P, F * G % P, E * H % P)


def pt_mul(s, pt):
    q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = pt_add(q, pt)
        pt = pt_add(pt, pt)
        s >>= 1
    return q


def pt_eq(a, b):
    return (a[0] * b[2] - b[0] * a[2]) % P == 0 and (a[1] * b[2] - b[1] * a[2]) % P == 0


def recover_x(y, sign):
    if y >= P:
        return None
    x2 = (y * y - 1) * inv(D * y * y + 1) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    if x & 1 != sign:
        x = P - x
    return x


def pt_from_y(y, sign):
    x = recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % P)


def compress(pt):
    zi = inv(pt[2])
    x, y = pt[0] * zi % P, pt[1] * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


BASE = pt_from_y(4 * inv(5) % P, 0)
IDENTITY = (0, 1, 1, 0)


def h_int(*parts):
    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little")


def expand(seed):
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little") & ((1 << 254) - 8) | (1 << 254)
    return a, h[32:]


def sign_with_r(seed, msg, r_point, r_scalar_known, r_enc=None):
    """S for an R chosen by the caller: R = r_point, S = r + k*a mod L, k from the given
    encoding of R (lets a key holder build the odd signatures Wycheproof describes)."""
    a, _ = expand(seed)
    A = compress(pt_mul(a, BASE))
    enc = r_enc if r_enc is not None else compress(r_point)
    k = h_int(enc, A, msg) % L
    return enc + ((r_scalar_known + k * a) % L).to_bytes(32, "little")


def torsion_points():
    """The eight points of small order, from the L-multiple of a point outside the
    prime-order subgroup."""
    y = 2
    while True:
        q = pt_from_y(y, 0)
        if q is not None:
            t = pt_mul(L, q)
            if not pt_eq(pt_mul(4, t), IDENTITY):  # order 8
                pts = [IDENTITY]
                for _ in range(7):
                    pts.append(pt_add(pts[-1], t))
                return pts
        y += 1


# ---- libsodium and core verdicts ------------------------------------------------------


def sodium_ok(pk, msg, sig):
    try:
        nacl.signing.VerifyKey(pk).verify(msg, sig)
        return True
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError,
            nacl.exceptions.TypeError, ValueError, TypeError):
        return False


def core_verdicts(crosscheck_bin, cases):
    lines = "\n".join(json.dumps({"pk": c["pk"].hex(), "msg": c["msg"].hex(), "sig": c["sig"].hex()})
                      for c in cases) + "\n"
    out = subprocess.run([crosscheck_bin, "ed25519"], input=lines, capture_output=True,
                         text=True, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"tillgate-crosscheck failed: {out.stderr}")
    v = out.stdout.split()
    assert len(v) == len(cases), (len(v), len(cases))
    return v


def generate_cases(rng):
    cases = []

    def add(group, pk, msg, sig, valid, code=None):
        cases.append({"group": group, "pk": pk, "msg": msg, "sig": sig, "valid": valid, "code": code})

    seed = bytes(rng.randrange(256) for _ in range(32))
    sk = nacl.signing.SigningKey(seed)
    pk = bytes(sk.verify_key)
    a, _ = expand(seed)
    assert compress(pt_mul(a, BASE)) == pk, "our arithmetic disagrees with libsodium"
    msg = b"Tillgate Wycheproof-style"
    sig = sk.sign(msg).signature
    add("valid", pk, msg, sig, True)

    # libsodium-made signatures over random messages: core accepts all.
    for i in range(64):
        s2 = bytes(rng.randrange(256) for _ in range(32))
        m = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
        k2 = nacl.signing.SigningKey(s2)
        add("libsodium-signed", bytes(k2.verify_key), m, k2.sign(m).signature, True)

    # Malleability: S + k*L for every k that still fits in 32 bytes.
    s = int.from_bytes(sig[32:], "little")
    k = 1
    while s + k * L < 2**256:
        add("S + k*L", pk, msg, sig[:32] + (s + k * L).to_bytes(32, "little"), False, "bad_signature")
        k += 1

    # Special values of R and S (Wycheproof tcId 10-29 use 0, 1, L-1, L, p and 2^255-1).
    specials = [0, 1, L - 1, L, P, 2**255 - 1]
    for r in specials:
        for sv in specials:
            add("special R/S", pk, b"\x3f", r.to_bytes(32, "little") + sv.to_bytes(32, "little"), False)

    # Small-order R (all eight points, plus non-canonical encodings), S = k*a: what a
    # cofactored verifier accepts; strict verification refuses.
    torsion = torsion_points()
    encs = [compress(t) for t in torsion]
    encs += [P.to_bytes(32, "little"), (P + 1).to_bytes(32, "little"),  # y = 0, 1 as y + p
             (1 | 1 << 255).to_bytes(32, "little"),  # identity with the sign bit
             ((P - 1) | 1 << 255).to_bytes(32, "little")]  # order 2 with the sign bit
    for e in encs:
        add("small-order R, S = k*a", pk, msg, sign_with_r(seed, msg, None, 0, r_enc=e), False, "bad_signature")

    # R with a torsion component (R = rB + T), S recomputed: refused by the cofactorless
    # equation (PROTOCOL.md 2.2 step 8).
    r = rng.randrange(1, L)
    for t in torsion[1:]:
        rp = pt_add(pt_mul(r, BASE), t)
        add("R + torsion, S recomputed", pk, msg, sign_with_r(seed, msg, rp, r), False, "bad_signature")
    # Control: the same construction without torsion is a valid signature.
    add("valid (constructed R)", pk, msg, sign_with_r(seed, msg, pt_mul(r, BASE), r), True)

    # Small-order and non-canonical public keys.
    for e in encs:
        add("weak public key", e, msg, sig, False, "weak_public_key")
    for y in range(P, 2**255):  # y >= p: non-canonical encodings of y - p
        for sign in (0, 1):
            e = (y | sign << 255).to_bytes(32, "little")
            add("non-canonical public key", e, msg, sig, False)

    # Truncated and padded signatures, wrong-length keys.
    for cut in (0, 1, 32, 63):
        add("truncated signature", pk, msg, sig[:cut], False, "invalid_signature_length")
    for extra in (b"\x00", sig[:32], sig):
        add("signature with garbage", pk, msg, sig + extra, False, "invalid_signature_length")
    add("31-byte key", pk[:31], msg, sig, False, "invalid_public_key_length")
    add("33-byte key", pk + b"\x00", msg, sig, False, "invalid_public_key_length")

    # Every single-bit flip of the signature, the key and the message.
    for i in range(512):
        b = bytearray(sig)
        b[i // 8] ^= 1 << (i % 8)
        add("signature bit flip", pk, msg, bytes(b), False)
    for i in range(256):
        b = bytearray(pk)
        b[i // 8] ^= 1 << (i % 8)
        add("public key bit flip", bytes(b), msg, sig, False)
    for i in range(len(msg) * 8):
        b = bytearray(msg)
        b[i // 8] ^= 1 << (i % 8)
        add("message bit flip", pk, bytes(b), sig, False, "bad_signature")
    return cases


def ed25519_checks(crosscheck_bin, vectors_path):
    rng = random.Random(int.from_bytes(os.urandom(8), "little"))
    cases = generate_cases(rng)
    # The project's own vectors, judged by libsodium too.
    for c in json.load(open(vectors_path))["cases"]:
        cases.append({"group": "tests/vectors/ed25519.json", "pk": bytes.fromhex(c["publicKey"]),
                      "msg": bytes.fromhex(c["message"]), "sig": bytes.fromhex(c["signature"]),
                      "valid": c["valid"], "code": c.get("error")})
    verdicts = core_verdicts(crosscheck_bin, cases)
    groups = {}
    sodium_disagree = []
    for c, v in zip(cases, verdicts):
        ok = (v == "ok") == c["valid"] and (c["code"] is None or c["valid"] or v == c["code"])
        g = groups.setdefault(c["group"], [0, 0])
        g[0 if ok else 1] += 1
        check(ok, f"core on {c['group']}: got {v}, expected {'ok' if c['valid'] else c['code'] or 'refusal'} "
                  f"(pk {c['pk'].hex()} sig {c['sig'].hex()})")
        s = sodium_ok(c["pk"], c["msg"], c["sig"])
        if s != c["valid"]:
            sodium_disagree.append(c["group"])
    for g, (p, f) in groups.items():
        print(f"  ed25519 {g}: {p} as expected" + (f", {f} NOT" if f else ""))
    # libsodium is the independent reference: it must agree everywhere.
    check(not sodium_disagree, f"libsodium disagrees with the expected verdict on: {sorted(set(sodium_disagree))}")
    if not sodium_disagree:
        print(f"  libsodium (PyNaCl {nacl.__version__}) agrees with core on all {len(cases)} cases")
    else:
        print(f"  libsodium disagrees on {len(sodium_disagree)} cases")


def dynamic_key_checks(vectors_path):
    cases = json.load(open(vectors_path))["derive"]
    check(len(cases) > 0, "no derive cases in dynamic_key.json")
    ok = 0
    for i, c in enumerate(cases):
        p = c["params"]
        salt = hashlib.sha256(b"tillgate/dk1/salt\0" + c["system"].encode() + b"\0" + c["login"].encode()).digest()
        seed = hash_secret_raw(secret=c["password"].encode(), salt=salt, time_cost=p["iterations"],
                               memory_cost=p["memoryKib"], parallelism=p["parallelism"], hash_len=32,
                               type=Argon2Type.ID, version=19)
        public = bytes(nacl.signing.SigningKey(seed).verify_key)
        good = seed.hex() == c["seed"] and public.hex() == c["publicKey"]
        check(seed.hex() == c["seed"], f"dynamic_key derive {i} ({c['login']}): argon2-cffi seed {seed.hex()}, vector {c['seed']}")
        check(public.hex() == c["publicKey"],
              f"dynamic_key derive {i} ({c['login']}): libsodium public key {public.hex()}, vector {c['publicKey']}")
        ok += good
    print(f"  dynamic_key derive: {ok} of {len(cases)} vectors recomputed by argon2-cffi + libsodium")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--admin-key", required=True)
    ap.add_argument("--crosscheck", required=True)
    ap.add_argument("--jose-script", required=True)
    ap.add_argument("--vectors", default=os.path.join(os.path.dirname(__file__), "../../vectors/ed25519.json"))
    ap.add_argument("--dynamic-key-vectors",
                    default=os.path.join(os.path.dirname(__file__), "../../vectors/dynamic_key.json"))
    args = ap.parse_args()
    print("JOSE cross-checks of server-made signatures:")
    art = server_artifacts(args.base, args.admin_key)
    jose_checks(art, args.crosscheck, args.jose_script)
    print("Ed25519: libsodium-made signatures and Wycheproof-style refusals:")
    ed25519_checks(args.crosscheck, args.vectors)
    print("Dynamic keys: derive vectors recomputed with argon2-cffi and libsodium:")
    dynamic_key_checks(args.dynamic_key_vectors)
    print(f"crosscheck: {PASSED} passed, {FAILED} failed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
