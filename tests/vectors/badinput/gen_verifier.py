import json
SI_LIST = '("@method" "@authority" "@path" "@query" "content-digest")'
P_CREATED = 'created=1700000000'
P_NONCE = 'nonce="badinput-nonce-0001"'
P_KEYID = 'keyid="test-key-ed25519"'
P_ALG = 'alg="ed25519"'
def si(created='created=1700000000', nonce=P_NONCE, keyid=P_KEYID, alg=P_ALG, extra='', lst=SI_LIST):
    parts=[lst]
    for p in (created, nonce, keyid, alg):
        if p: parts.append(p)
    s=';'.join(parts)
    return s+extra
T = {
 "method":"POST","scheme":"https","authority":"api.example.com","target":"/v1/items?limit=10",
 "body":"{\"name\":\"widget\",\"qty\":3}",
 "si": si(),
 "now": 1700000005,
 "headers":[["Host","api.example.com"],["Content-Type","application/json"],["Content-Length","{LEN}"],
            ["Content-Digest","sha-256=:{DIGEST}:"],["Signature-Input","sig1={SI}"],["Signature","sig1=:{SIG}:"]],
}
C=[]
def case(name, expect, field=None, desc=None, **kw):
    d={"name":name}
    if desc: d["description"]=desc
    d["expect"]=expect
    if field: d["field"]=field
    d.update(kw)
    C.append(d)
SI='Signature-Input'; SG='Signature'; CD='Content-Digest'
case("baseline_ok","ok",desc="The template itself verifies.", needs_signature=True)
# ---- limits: Signature-Input (8192 bytes combined)
case("si_at_limit_8192","ok",desc="Signature-Input exactly 8192 bytes (an unknown string parameter pads it).",
     si=si(extra=';x="{PAD}"'), pad_to=8192, needs_signature=True)
case("si_over_limit_8193","limit",SI,desc="Signature-Input 8193 bytes.", si=si(extra=';x="{PAD}"'), pad_to=8193)
case("si_two_lines_combined_over_limit","limit",SI,desc="Two Signature-Input lines, each under the limit, 8193 bytes once joined with ', '.",
     add=[["Signature-Input","zz=(\"@method\");x=\"{PAD}\""]], pad_to=8193-2-len('sig1=')-len(si())-0)
# ---- Signature (8192)
case("sig_field_at_limit_8192","ok",desc="Signature exactly 8192 bytes: ignored parameters on the member pad it.",
     set=[["Signature","sig1=:{SIG}:;x=\"{PAD}\""]], pad_to=8192, needs_signature=True)
case("sig_field_over_limit_8193","limit",SG,desc="Signature 8193 bytes.", set=[["Signature","sig1=:{SIG}:;x=\"{PAD}\""]], pad_to=8193)
# ---- Content-Digest (4096)
case("cd_at_limit_4096","ok",desc="Content-Digest exactly 4096 bytes: an unknown member pads it.",
     set=[["Content-Digest","sha-256=:{DIGEST}:, x=\"{PAD}\""]], pad_to=4096, needs_signature=True)
case("cd_over_limit_4097","limit",CD,desc="Content-Digest 4097 bytes.", set=[["Content-Digest","sha-256=:{DIGEST}:, x=\"{PAD}\""]], pad_to=4097)
# ---- truncated fields
case("si_truncated_mid_list","sig_input_malformed",SI,desc="Signature-Input cut inside the inner list.",
     set=[["Signature-Input",'sig1=("@method" "@authority" "@pa']])
case("si_truncated_mid_param","sig_input_malformed",SI,desc="Signature-Input cut inside a String parameter.",
     set=[["Signature-Input",'sig1='+SI_LIST+';created=1700000000;nonce="badinput-no']])
case("si_truncated_after_eq","sig_input_malformed",SI,desc="Signature-Input 'sig1=' and nothing else.",
     set=[["Signature-Input","sig1="]])
case("sig_truncated_no_close","sig_malformed",SG,desc="Signature Byte Sequence without its closing colon.",
     set=[["Signature","sig1=:{SIG}"]])
case("sig_truncated_half","sig_malformed",SG,desc="Signature cut to 44 base64 characters (33 octets).",
     set=[["Signature","sig1=:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB:"]])
case("cd_truncated","digest_malformed",CD,desc="Content-Digest cut inside the Byte Sequence.",
     set=[["Content-Digest","sha-256=:{DIGEST}"]])
# ---- duplicate keys (RFC 8941: last wins, first position)
case("si_duplicate_label_last_wins_ok","ok",desc="sig1 twice in Signature-Input: the last (valid) value is used.",
     set=[["Signature-Input",'sig1=("@method");created=1, sig1={SI}']], needs_signature=True)
case("si_duplicate_label_last_wins_bad","component_required",SI,mention="@authority",desc="sig1 twice: the last value covers only @method, so it is the one checked.",
     set=[["Signature-Input",'sig1={SI}, sig1=("@method");created=1700000000;nonce="badinput-nonce-0001";keyid="test-key-ed25519"']])
case("sig_duplicate_label_last_wins_ok","ok",desc="sig1 twice in Signature: the last (right) signature is used.",
     set=[["Signature","sig1=:{SIG_OTHER}:, sig1=:{SIG}:"]], needs_signature=True)
case("sig_duplicate_label_last_wins_bad","sig_invalid",SG,desc="sig1 twice in Signature: the last (wrong) signature is used.",
     set=[["Signature","sig1=:{SIG}:, sig1=:{SIG_OTHER}:"]], needs_signature=True)
case("param_duplicate_created_last_wins","ok",desc="created twice: the last value is the one in force and in @signature-params.",
     si=SI_LIST+';created=5;'+P_NONCE+';'+P_KEYID+';'+P_ALG+';created=1700000000', needs_signature=True)
case("param_duplicate_nonce_last_short","param_invalid",SI,mention="nonce",desc="nonce twice: the last one is 5 characters.",
     si=si(extra=';nonce="short"'))
case("cd_duplicate_key_last_wins_ok","ok",desc="sha-256 twice in Content-Digest: the last (right) one is checked.",
     set=[["Content-Digest","sha-256=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:, sha-256=:{DIGEST}:"]], needs_signature=True)
case("cd_duplicate_key_last_wins_mismatch","digest_mismatch",CD,mention="digest",desc="sha-256 twice: the last (wrong) one is checked after the body.",
     set=[["Content-Digest","sha-256=:{DIGEST}:, sha-256=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:"]], needs_signature=True)
# ---- duplicate components
case("component_duplicate_path","component_duplicate",SI,mention="@path",desc='"@path" covered twice.',
     si=si(lst='("@method" "@authority" "@path" "@query" "content-digest" "@path")'))
case("component_duplicate_field","component_duplicate",SI,mention="content-type",desc='"content-type" covered twice.',
     si=si(lst='("@method" "@authority" "@path" "@query" "content-digest" "content-type" "content-type")'))
case("component_duplicate_params_reordered","component_duplicate",SI,mention="content-digest",desc='The same field with the same parameters in another order.',
     si=si(lst='("@method" "@authority" "@path" "@query" "content-digest" "content-digest";sf;key="sha-256" "content-digest";key="sha-256";sf)'))
# ---- non-ASCII and control bytes
case("si_non_ascii","sig_input_malformed",SI,desc="UTF-8 é inside the nonce String.",
     si=si(nonce='nonce="badinput-n\u00e9nce-01"'))
case("si_control_byte","sig_input_malformed",SI,desc="0x01 inside the keyid String.",
     si=si(keyid='keyid="test-key\u0001ed25519"'))
case("si_nul_byte","sig_input_malformed",SI,desc="NUL inside the inner list.",
     si='("@method"\u0000 "@authority" "@path" "@query" "content-digest");'+P_CREATED+';'+P_NONCE+';'+P_KEYID)
case("sig_non_ascii","sig_malformed",SG,desc="Non-ASCII byte inside the Signature Byte Sequence.",
     set=[["Signature","sig1=:\u00ff{SIG}:"]])
case("sig_control_byte","sig_malformed",SG,desc="0x7f after the Signature member.",
     set=[["Signature","sig1=:{SIG}:\u007f"]])
case("cd_non_ascii","digest_malformed",CD,desc="Non-ASCII byte in Content-Digest.",
     set=[["Content-Digest","sha-256=:{DIGEST}:, x=\u00e9"]])
case("cd_control_byte","digest_malformed",CD,desc="0x1f in Content-Digest.",
     set=[["Content-Digest","sha-256=:{DIGEST}:\u001f"]])
case("target_non_ascii","url","request-target",desc="Non-ASCII byte in the request-target.",
     target="/v1/it\u00e9ms?limit=10")
case("target_control_byte","url","request-target",desc="0x01 in the request-target.",
     target="/v1/items\u0001?limit=10")
case("target_nul_byte","url","request-target",desc="NUL in the request-target.",
     target="/v1/items\u0000?limit=10")
case("target_space","url","request-target",desc="SP in the request-target.",
     target="/v1/items ?limit=10")
case("method_non_ascii","component_invalid",SI,mention="@method",desc="Non-ASCII byte in the method.", method="P\u00d6ST")
case("method_control_byte","component_invalid",SI,mention="@method",desc="0x09 in the method.", method="PO\tST")
case("authority_non_ascii","url","@authority",mention="host",desc="Non-ASCII byte in Host.", authority="api.ex\u00e4mple.com")
case("authority_control_byte","url","@authority",mention="host",desc="0x00 in Host.", authority="api.example.com\u0000")
case("covered_field_non_ascii","component_invalid",SI,mention="content-type",desc="A covered field with a non-ASCII byte (not bs).",
     si=si(lst='("@method" "@authority" "@path" "@query" "content-digest" "content-type")'),
     set=[["Content-Type","application/j\u00e9son"]])
case("covered_field_obs_fold","component_invalid",SI,mention="content-type",desc="A covered field holding CRLF SP (obs-fold left in by a lax parser).",
     si=si(lst='("@method" "@authority" "@path" "@query" "content-digest" "content-type")'),
     set=[["Content-Type","application/json;\r\n charset=utf-8"]])
case("si_obs_fold","sig_input_malformed",SI,desc="Signature-Input with an obs-fold (CRLF SP) between list and parameters.",
     set=[["Signature-Input","sig1="+SI_LIST+"\r\n ;"+P_CREATED+";"+P_NONCE+";"+P_KEYID]])
case("sig_obs_fold","sig_malformed",SG,desc="Signature with CRLF HTAB inside the Byte Sequence.",
     set=[["Signature","sig1=:{SIG}\r\n\t:"]])
# ---- whitespace around values
case("ows_around_values_ok","ok",desc="SP/HTAB around the field values are not part of them.",
     set=[["Signature-Input"," \tsig1={SI}\t "],["Signature","\t sig1=:{SIG}: "],["Content-Digest","\tsha-256=:{DIGEST}:\t"]], needs_signature=True)
case("ows_around_dict_comma_ok","ok",desc="HTAB/SP around the dictionary comma are allowed (RFC 8941 OWS).",
     set=[["Signature-Input","other=(\"@method\") \t,\t sig1={SI}"]], label="sig1", needs_signature=True)
case("tab_inside_inner_list","sig_input_malformed",SI,desc="HTAB between inner-list items (only SP allowed).",
     si=si(lst='("@method"\t"@authority" "@path" "@query" "content-digest")'))
case("space_around_param_eq","sig_input_malformed",SI,desc="SP before '=' of a parameter.",
     si=SI_LIST+';created =1700000000;'+P_NONCE+';'+P_KEYID)
# ---- integers
case("created_16_digits","sig_input_malformed",SI,desc="created with 16 digits (RFC 8941: at most 15).",
     si=si(created='created=1000000000000000'))
case("created_15_digits_max","sig_future",SI,mention="created",desc="created = 999999999999999 (largest Integer): parsed, then far in the future.",
     si=si(created='created=999999999999999'))
case("created_minus_zero","sig_too_old",SI,mention="created",desc="created=-0 is Integer 0: valid type, far too old.",
     si=si(created='created=-0'))
case("unknown_param_minus_zero_canonical","ok",desc="x=-0 is kept as x=0 in @signature-params (canonical form).",
     si=si(extra=';x=-0'), needs_signature=True)
case("created_leading_zeros","ok",desc="created=01700000000 parses to 1700000000 and is re-serialised canonically.",
     si=si(created='created=01700000000'), needs_signature=True)
case("created_negative","param_invalid",SI,mention="created",desc="created=-1.", si=si(created='created=-1'))
case("created_decimal","param_invalid",SI,mention="created",desc="created as a Decimal.", si=si(created='created=1700000000.0'))
case("created_string","param_invalid",SI,mention="created",desc="created as a String.", si=si(created='created="1700000000"'))
case("created_huge_negative","param_invalid",SI,mention="created",desc="created = -999999999999999.", si=si(created='created=-999999999999999'))
case("created_at_future_edge","ok",desc="created = now + skew exactly.", now=1700000000-30, needs_signature=True)
case("created_over_future_edge","sig_future",SI,mention="created",desc="created = now + skew + 1.", now=1700000000-31)
case("created_at_old_edge","ok",desc="created = now - max_age - skew exactly.", now=1700000000+330, needs_signature=True)
case("created_over_old_edge","sig_too_old",SI,mention="created",desc="created = now - max_age - skew - 1.", now=1700000000+331)
case("expires_before_created","param_invalid",SI,mention="expires",desc="expires = created - 1.", si=si(extra=';expires=1699999999'))
case("expires_equal_created_ok","ok",desc="expires = created, within skew.", si=si(extra=';expires=1700000000'), needs_signature=True)
case("expires_negative","param_invalid",SI,mention="expires",desc="expires=-5.", si=si(extra=';expires=-5'))
case("expires_passed","sig_expired",SI,mention="expired",desc="expires + skew < now.", si=si(extra=';expires=1700000010'), now=1700000041)
# ---- nonce
case("nonce_empty","param_invalid",SI,mention="nonce",desc='nonce="".', si=si(nonce='nonce=""'))
case("nonce_7_chars","param_invalid",SI,mention="nonce",desc="nonce of 7 characters.", si=si(nonce='nonce="abcdefg"'))
case("nonce_8_chars_ok","ok",desc="nonce of 8 characters.", si=si(nonce='nonce="abcdefgh"'), needs_signature=True)
case("nonce_128_chars_ok","ok",desc="nonce of 128 characters.", si=si(nonce='nonce="{R:128:n}"'), needs_signature=True)
case("nonce_129_chars","param_invalid",SI,mention="nonce",desc="nonce of 129 characters.", si=si(nonce='nonce="{R:129:n}"'))
case("nonce_token","param_invalid",SI,mention="nonce",desc="nonce as a Token.", si=si(nonce='nonce=abcdefghij'))
case("nonce_escape_counts_two","param_invalid",SI,mention="nonce",desc='nonce of 127 characters + \\" (129 as received).',
     si=si(nonce='nonce="{R:127:n}\\""'))
# ---- keyid
case("keyid_256_chars_ok","ok",desc="keyid of 256 characters.", si=si(keyid='keyid="{R:256:k}"'), needs_signature=True)
case("keyid_257_chars","param_invalid",SI,mention="keyid",desc="keyid of 257 characters.", si=si(keyid='keyid="{R:257:k}"'))
case("keyid_empty","param_invalid",SI,mention="keyid",desc='keyid="".', si=si(keyid='keyid=""'))
case("keyid_escape_256_received_ok","ok",desc='keyid of 254 characters + \\\\ (256 as received, 255 unescaped).',
     si=si(keyid='keyid="{R:254:k}\\\\"'), needs_signature=True)
case("keyid_escape_257_received","param_invalid",SI,mention="keyid",desc='keyid of 255 characters + \\\\ (257 as received).',
     si=si(keyid='keyid="{R:255:k}\\\\"'))
# ---- signature bytes and base64
case("sig_63_bytes","sig_malformed",SG,desc="Signature of 63 octets.", set=[["Signature","sig1=:{SIG63}:"]])
case("sig_65_bytes","sig_malformed",SG,desc="Signature of 65 octets.", set=[["Signature","sig1=:{SIG65}:"]])
case("sig_no_padding","sig_malformed",SG,desc="Signature without its == padding.", set=[["Signature","sig1=:{SIG_NOPAD}:"]])
case("sig_extra_padding","sig_malformed",SG,desc="Signature with extra == padding.", set=[["Signature","sig1=:{SIG_EXTRAPAD}:"]])
case("sig_nonzero_pad_bits","sig_malformed",SG,desc="Signature whose pad bits are not zero.", set=[["Signature","sig1=:{SIG_PADBITS}:"]], needs_signature=True)
case("sig_urlsafe_alphabet","sig_malformed",SG,desc="Signature in the base64url alphabet.", set=[["Signature","sig1=:{SIG_URLSAFE}:"]], needs_signature=True)
case("sig_token_not_binary","sig_malformed",SG,desc="Signature member is a Token.", set=[["Signature","sig1=abc"]])
case("sig_inner_list","sig_malformed",SG,desc="Signature member is an Inner List of Byte Sequences.", set=[["Signature","sig1=(:{SIG}:)"]])
case("sig_wrong_value","sig_invalid",SG,desc="A well-formed signature that does not verify.", set=[["Signature","sig1=:{SIG_OTHER}:"]], needs_signature=True)
# ---- alg
case("alg_other_algorithm","alg_mismatch",SI,mention="alg",desc="alg=\"rsa-v1_5-sha256\" with an Ed25519 key.", si=si(alg='alg="rsa-v1_5-sha256"'))
case("alg_uppercase","alg_mismatch",SI,mention="alg",desc="alg=\"ED25519\" (case matters).", si=si(alg='alg="ED25519"'))
case("alg_token","param_invalid",SI,mention="alg",desc="alg as a Token.", si=si(alg='alg=ed25519'))
case("alg_integer","param_invalid",SI,mention="alg",desc="alg as an Integer.", si=si(alg='alg=25519'))
case("alg_64_chars","alg_mismatch",SI,mention="alg",desc="alg of 64 characters: right type and size, wrong value.", si=si(alg='alg="{R:64:a}"'))
case("alg_65_chars","param_invalid",SI,mention="alg",desc="alg of 65 characters.", si=si(alg='alg="{R:65:a}"'))
# ---- Content-Digest shapes
case("cd_only_unknown_algs","digest_no_known_alg",CD,desc="Content-Digest with sha-1 and md5 only.",
     set=[["Content-Digest","sha-1=:AAAAAAAAAAAAAAAAAAAAAAAAAAA=:, md5=:AAAAAAAAAAAAAAAAAAAAAA==:"]])
case("cd_sha256_31_bytes","digest_malformed",CD,desc="sha-256 member of 31 octets.",
     set=[["Content-Digest","sha-256=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==:"]])
case("cd_sha256_33_bytes","digest_malformed",CD,desc="sha-256 member of 33 octets.",
     set=[["Content-Digest","sha-256=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA:"]])
case("cd_sha512_32_bytes","digest_malformed",CD,desc="sha-512 member of 32 octets.",
     set=[["Content-Digest","sha-512=:{DIGEST}:"]])
case("cd_sha256_string","digest_malformed",CD,desc="sha-256 member is a String.",
     set=[["Content-Digest","sha-256=\"{DIGEST}\""]])
case("cd_sha256_no_padding","digest_malformed",CD,desc="sha-256 member without '=' padding.",
     set=[["Content-Digest","sha-256=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA:"]])
case("cd_unknown_alg_ignored_ok","ok",desc="Unknown members next to a right sha-256 are ignored, even malformed base64.",
     set=[["Content-Digest","sha-1=:AAA:, sha-256=:{DIGEST}:, foo=:AQ:"]], needs_signature=True)
case("cd_unused_member_unparseable","digest_malformed",CD,desc="An unknown member that is not RFC 8941 base64 at all (one character): the whole field fails.",
     set=[["Content-Digest","sha-256=:{DIGEST}:, foo=:B:"]])
# ---- a present Content-Digest is checked whenever the request has content,
# covered or not, in both profiles. ORIG: the digest of the template body; the
# cases send a different body of the same length (Content-Length still right).
import base64 as _b64, hashlib as _hl
ORIG=_b64.b64encode(_hl.sha256(T["body"].encode()).digest()).decode()
TAMPERED='{"name":"widget","qty":9}'
assert len(TAMPERED)==len(T["body"])
R9421='rfc9421'
case("cd_sf_covered_body_changed_rfc9421","digest_mismatch",CD,mention="digest",
     desc='rfc9421 profile: "content-digest";sf covered, body changed (same length).',
     profile=R9421, si=si(lst='("@method" "@authority" "@path" "@query" "content-digest";sf)'),
     body=TAMPERED, set=[["Content-Digest","sha-256=:"+ORIG+":"]], needs_signature=True)
case("cd_sf_covered_body_ok_rfc9421","ok",desc='rfc9421 profile: "content-digest";sf covered, body as signed.',
     profile=R9421, si=si(lst='("@method" "@authority" "@path" "@query" "content-digest";sf)'), needs_signature=True)
case("cd_uncovered_body_changed_rfc9421","digest_mismatch",CD,mention="digest",
     desc="rfc9421 profile (RFC 9421 B.2.6 shape): Content-Digest present, not covered; content-length covered; body changed (same length).",
     profile=R9421, si=si(lst='("@method" "@authority" "@path" "@query" "content-type" "content-length")'),
     body=TAMPERED, set=[["Content-Digest","sha-256=:"+ORIG+":"]], needs_signature=True)
case("cd_uncovered_body_ok_rfc9421","ok",desc="rfc9421 profile: Content-Digest present, not covered, body matches.",
     profile=R9421, si=si(lst='("@method" "@authority" "@path" "@query" "content-type" "content-length")'), needs_signature=True)
case("cd_uncovered_malformed_with_content_rfc9421","digest_malformed",CD,
     desc="rfc9421 profile: an uncovered Content-Digest that cannot be parsed, on a request with content: it cannot be checked.",
     profile=R9421, si=si(lst='("@method" "@authority" "@path" "@query" "content-length")'),
     set=[["Content-Digest","sha-256=:{DIGEST}"]])
case("cd_uncovered_no_known_alg_with_content_rfc9421","digest_no_known_alg",CD,
     desc="rfc9421 profile: an uncovered Content-Digest with md5 only, on a request with content.",
     profile=R9421, si=si(lst='("@method" "@authority" "@path" "@query" "content-length")'),
     set=[["Content-Digest","md5=:AAAAAAAAAAAAAAAAAAAAAA==:"]])
case("cd_uncovered_malformed_no_content_rfc9421_ok","ok",
     desc="rfc9421 profile: an uncovered, unparseable Content-Digest on a request without content (Content-Length: 0) is not used.",
     profile=R9421, si=si(lst='("@method" "@authority" "@path" "@query")'), body="",
     set=[["Content-Digest","sha-256=:{DIGEST}"]], needs_signature=True)
case("cd_uncovered_body_changed_no_length_rfc9421","digest_mismatch",CD,mention="digest",
     desc="rfc9421 profile: Content-Digest present, not covered, no Content-Length (the content is not announced, as with HTTP/2 DATA frames) and a changed body arrives.",
     profile=R9421, si=si(lst='("@method" "@authority" "@path" "@query")'),
     body=TAMPERED, set=[["Content-Digest","sha-256=:"+ORIG+":"],["Content-Length",None]], needs_signature=True)
case("cd_uncovered_malformed_body_no_length_rfc9421","digest_malformed",CD,
     desc="rfc9421 profile: an uncovered, unparseable Content-Digest, no Content-Length, and content bytes arrive: it cannot be checked.",
     profile=R9421, si=si(lst='("@method" "@authority" "@path" "@query")'),
     set=[["Content-Digest","sha-256=:{DIGEST}"],["Content-Length",None]], needs_signature=True)
case("cd_sf_covered_reqsign_profile","digest_required",SI,mention="content-digest",
     desc='reqsign profile: only "content-digest";sf covered on a request with content: the plain form is required.',
     si=si(lst='("@method" "@authority" "@path" "@query" "content-digest";sf)'))
# ---- path tricks: signed for /v1/items
PT=[("path_double_slash","//v1/items?limit=10"),("path_dot_segment","/v1/./items?limit=10"),
    ("path_encoded_slash","/v1%2Fitems?limit=10"),("path_dotdot","/v1/x/../items?limit=10"),
    ("path_encoded_dotdot","/v1/x/%2e%2e/items?limit=10"),("path_trailing_slash","/v1/items/?limit=10"),
    ("path_encoded_letter","/v1/%69tems?limit=10")]
for n,tg in PT:
    case(n,"sig_invalid",SG,desc="Received "+tg+", signed for /v1/items?limit=10.", target=tg,
         sign={"target":"/v1/items?limit=10"}, needs_signature=True)
# ---- Host variations
case("host_uppercase_ok","ok",desc="Host in upper case: normalised.", authority="API.Example.COM",
     sign={"authority":"api.example.com"}, needs_signature=True)
case("host_default_port_ok","ok",desc="Host with the explicit default port 443.", authority="api.example.com:443",
     sign={"authority":"api.example.com"}, needs_signature=True)
case("host_other_port","sig_invalid",SG,mention="authority",desc="Host with port 8443, signed without.", authority="api.example.com:8443",
     sign={"authority":"api.example.com"}, needs_signature=True)
case("host_userinfo","url","@authority",mention="authority",desc="Host with userinfo.", authority="user@api.example.com")
case("host_port_65536","url","@authority",mention="authority",desc="Host with port 65536.", authority="api.example.com:65536")
case("host_262_ok","ok",desc="A 262-byte authority (the limit).", authority="{R:262:h}", needs_signature=True)
case("host_263","limit","@authority",mention="authority",desc="A 263-byte authority.", authority="{R:263:h}")
case("method_32_ok","ok",desc="A 32-byte method.", method="{R:32:M}", needs_signature=True)
case("method_33","limit",SI,mention="@method",desc="A 33-byte method.", method="{R:33:M}")
case("target_8192_ok","ok",desc="An 8192-byte request-target.", target="/v1/items?q={R:8180:q}", needs_signature=True)
case("target_8193","limit","request-target",desc="An 8193-byte request-target.", target="/v1/items?q={R:8181:q}")
case("covered_field_8192_ok","ok",desc="A covered field of 8192 bytes.",
     si=si(lst='("@method" "@authority" "@path" "@query" "content-digest" "x-big")'), add=[["X-Big","{R:8192:b}"]], needs_signature=True)
case("covered_field_8193","limit",SI,mention="x-big",desc="A covered field of 8193 bytes.",
     si=si(lst='("@method" "@authority" "@path" "@query" "content-digest" "x-big")'), add=[["X-Big","{R:8193:b}"]])
# ---- counts
def comps(n):
    base=['"@method"','"@authority"','"@path"','"@query"','"content-digest"']
    return '('+' '.join(base+['"x-h%d"'%i for i in range(1,n-4)])+')'
hdrs32=[["X-H%d"%i,"v%d"%i] for i in range(1,28)]
case("components_32_ok","ok",desc="32 covered components (the limit).", si=si(lst=comps(32)), add=hdrs32, needs_signature=True)
case("components_33","limit",SI,mention="components",desc="33 covered components.", si=si(lst=comps(33)), add=hdrs32+[["X-H28","v28"]])
case("params_16_ok","ok",desc="16 signature parameters (the limit).", si=si(extra=''.join(';p%d=%d'%(i,i) for i in range(1,13))), needs_signature=True)
case("params_17","limit",SI,mention="parameters",desc="17 signature parameters.", si=si(extra=''.join(';p%d=%d'%(i,i) for i in range(1,14))))
others=lambda n: ''.join(', s%d=("@method")'%i for i in range(2,n+1))
otherssig=lambda n: ''.join(', s%d=:{SIG_OTHER}:'%i for i in range(2,n+1))
case("signatures_8_ok","ok",desc="8 members in both fields; sig1 selected.",
     set=[["Signature-Input","sig1={SI}"+others(8)],["Signature","sig1=:{SIG}:"+otherssig(8)]], needs_signature=True)
case("signatures_9_input","limit",SI,desc="9 members in Signature-Input.", set=[["Signature-Input","sig1={SI}"+others(9)]])
case("signatures_9_signature","limit",SG,desc="9 members in Signature.", set=[["Signature","sig1=:{SIG}:"+otherssig(9)]])
case("label_64_ok","ok",desc="A 64-character label.", set=[["Signature-Input","{R:64:l}={SI}"],["Signature","{R:64:l}=:{SIG}:"]],
     sign={"label":"l"*64}, needs_signature=True)
case("label_65","limit",SI,desc="A 65-character label.", set=[["Signature-Input","{R:65:l}={SI}"],["Signature","{R:65:l}=:{SIG}:"]])
# ---- empty / label
# half a signature is sig_incomplete, not sig_missing: stripping or emptying one
# field must not look like an unsigned request (downgrade to a fallback)
case("si_empty","sig_incomplete",SI,desc="An empty Signature-Input value, Signature intact.", set=[["Signature-Input",""]])
case("si_whitespace_only","sig_incomplete",SI,desc="A Signature-Input of SP and HTAB only, Signature intact.", set=[["Signature-Input"," \t "]])
case("sig_empty","sig_incomplete",SG,desc="An empty Signature value, Signature-Input intact.", set=[["Signature",""]])
case("si_absent","sig_incomplete",SI,desc="No Signature-Input field, Signature intact.", set=[["Signature-Input",None]])
case("sig_absent","sig_incomplete",SG,desc="No Signature field, Signature-Input intact.", set=[["Signature",None]])
case("both_empty","sig_missing",SI,desc="Both fields present and empty: no signature at all.", set=[["Signature-Input",""],["Signature",""]])
case("both_absent","sig_missing",SG,mention="Signature",desc="Neither field: an unsigned request.", set=[["Signature-Input",None],["Signature",None]])
case("label_mismatch","sig_label",SG,mention="sig1",desc="Signature-Input sig1, Signature sig2.", set=[["Signature","sig2=:{SIG}:"]])
case("label_configured_absent","sig_label",SI,mention="proxy",desc="Verifier configured with label 'proxy'; the request has sig1 only.", label="proxy")
case("label_uppercase","sig_input_malformed",SI,desc="Label starting with an upper-case letter.", set=[["Signature-Input","Sig1={SI}"]])
case("ambiguous_two_labels","sig_ambiguous",SI,mention="sig1",desc="Two members, none sig1, no label configured.",
     set=[["Signature-Input","a={SI}, b={SI}"],["Signature","a=:{SIG}:, b=:{SIG}:"]])
json.dump({"about":"Malformed inputs for the verifier: see README.md in this directory. Generated by gen_verifier.py in this directory (python3 gen_verifier.py); edit the script, not this file. Names are unique.",
           "template":T,"cases":C}, open(__import__('os').path.join(__import__('os').path.dirname(__import__('os').path.abspath(__file__)),'verifier.json'),'w'), indent=1, ensure_ascii=True)
print(len(C))
