use super::*;
use http::HeaderValue;
use http::header::HeaderName;

const AK: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SK: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const TSDB_HOST: &str = "metricsdb.tsdb.iot.gz.baidubce.com";
const TSDB_PREFIX: &str = "bce-auth-v1/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/2016-06-08T16:49:51Z/1800";
const TV_A1_AUTH: &str = "bce-auth-v1/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/2016-06-08T16:49:51Z/1800/host;x-bce-date/8b623d176d8535269c7f56ee0bdda1a6576092feac6bc7c583c887e7f996de2a";
const TV_A3_QUERY: &str = "sql=select%20%2A%20from%20cpu_idle&authorization=bce-auth-v1%2Faaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa%2F2016-06-08T16%3A49%3A51Z%2F1800%2Fhost%2F9614e3f406b47c27e41fa9fcb6440b2546a7b899ff75dc977ed3f9393d3097b1";

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn headers(pairs: &[(&str, &str)]) -> Result<HeaderMap, Box<dyn std::error::Error>> {
    let mut map = HeaderMap::new();
    for &(name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes())?,
            HeaderValue::from_str(value)?,
        );
    }
    Ok(map)
}

fn credentials() -> Store {
    let key = Credential {
        access_key_id: AK.to_owned(),
        secret_access_key: SK.to_owned(),
        databases: vec!["*".to_owned()],
    };
    Store::new(&sundial_api::access::Config::default(), [key.to_key()]).unwrap_or_default()
}

fn at(year: i16, month: i8, day: i8, hour: i8, minute: i8, second: i8) -> i64 {
    let time = jiff::civil::date(year, month, day).at(hour, minute, second, 0);
    jiff::tz::Offset::UTC
        .to_timestamp(time)
        .unwrap()
        .as_second()
}

/// The TV clock, 2016-06-08T17:00:00Z.
fn tv_now() -> i64 {
    at(2016, 6, 8, 17, 0, 0)
}

fn tv_a1_headers(host: &str, authorization: &str) -> Result<HeaderMap, Box<dyn std::error::Error>> {
    headers(&[
        ("host", host),
        ("x-bce-date", "2016-06-08T16:49:51Z"),
        ("authorization", authorization),
    ])
}

fn get<'a>(path: &'a str, query: Option<&'a str>, headers: &'a HeaderMap) -> SignedRequest<'a> {
    SignedRequest {
        method: "GET",
        path,
        query,
        headers,
    }
}

#[test]
fn uri_encode_follows_spec_examples() {
    assert_eq!(uri_encode("aZ09-._~", false), "aZ09-._~");
    assert_eq!(uri_encode(" *:=/", false), "%20%2A%3A%3D%2F");
    assert_eq!(uri_encode("/a b/", true), "/a%20b/");
    assert_eq!(uri_encode("é", false), "%C3%A9");
}

#[test]
fn reference_vector_section_5_6() -> TestResult {
    let h = headers(&[
        ("host", "bj.bcebos.com"),
        ("date", "Mon, 27 Apr 2015 16:23:49 +0800"),
        ("content-type", "text/plain"),
        ("content-length", "8"),
        ("content-md5", "NFzcPqhviddjRNnSOGo4rw=="),
        ("x-bce-date", "2015-04-27T08:23:49Z"),
    ])?;
    let req = SignedRequest {
        method: "PUT",
        path: "/v1/test/myfolder/readme.txt",
        query: Some("partNumber=9&uploadId=a44cc9bab11cbd156984767aad637851"),
        headers: &h,
    };
    let canonical = canonical_request(&req, &[]);
    assert_eq!(
        canonical,
        "PUT\n/v1/test/myfolder/readme.txt\n\
         partNumber=9&uploadId=a44cc9bab11cbd156984767aad637851\n\
         content-length:8\n\
         content-md5:NFzcPqhviddjRNnSOGo4rw%3D%3D\n\
         content-type:text%2Fplain\n\
         host:bj.bcebos.com\n\
         x-bce-date:2015-04-27T08%3A23%3A49Z"
    );
    let key = signing_key(
        SK,
        "bce-auth-v1/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/2015-04-27T08:23:49Z/1800",
    );
    assert_eq!(
        key,
        "1d5ce5f464064cbee060330d973218821825ac6952368a482a592e6615aef479"
    );
    assert_eq!(
        sign(&key, &canonical),
        "d74a04362e6a848f5b39b15421cb449427f419c95a480fd6b8cf9fc783e2999e"
    );

    // The full verifier agrees, with the clock at the signing time.
    let mut h = h.clone();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_static(
            "bce-auth-v1/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/2015-04-27T08:23:49Z/1800//d74a04362e6a848f5b39b15421cb449427f419c95a480fd6b8cf9fc783e2999e",
        ),
    );
    let req = SignedRequest {
        headers: &h,
        method: req.method,
        path: req.path,
        query: req.query,
    };
    let creds = credentials();
    assert_eq!(
        verify(&req, &creds, at(2015, 4, 27, 8, 23, 49)).map(|c| key_id(&c)),
        Ok(AK.to_owned())
    );
    Ok(())
}

#[test]
fn tsdb_signing_key() {
    assert_eq!(
        signing_key(SK, TSDB_PREFIX),
        "cc5e5846d12b2f6e35146272a231eeed5c5c5c07b23f98ed3d32f271fea13907"
    );
}

#[test]
fn tv_a1_header_auth_js_style() -> TestResult {
    let h = tv_a1_headers(TSDB_HOST, TV_A1_AUTH)?;
    let req = get("/v1/metric", None, &h);
    assert_eq!(
        canonical_request(&req, &["host", "x-bce-date"]),
        "GET\n/v1/metric\n\nhost:metricsdb.tsdb.iot.gz.baidubce.com\nx-bce-date:2016-06-08T16%3A49%3A51Z"
    );
    let creds = credentials();
    let cred = verify(&req, &creds, tv_now())?;
    assert_eq!(key_id(&cred), AK);
    assert!(cred.may("metricsdb", Action::Write));
    Ok(())
}

#[test]
fn tv_a2_empty_signed_headers_python_style() -> TestResult {
    let h = headers(&[
        ("host", TSDB_HOST),
        ("x-bce-date", "2016-06-08T16:49:51Z"),
        ("content-type", "application/json"),
        ("content-length", "69"),
        (
            "authorization",
            "bce-auth-v1/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/2016-06-08T16:49:51Z/1800//10d85ca53f56d6fe3263fc169ddb99fef008ad42ab3717370f2db4ffcf2ce30a",
        ),
    ])?;
    let req = SignedRequest {
        method: "PUT",
        path: "/v1/datapoint",
        query: Some("query=&disablePresampling=False"),
        headers: &h,
    };
    assert_eq!(
        canonical_request(&req, &[]),
        "PUT\n/v1/datapoint\ndisablePresampling=False&query=\ncontent-length:69\n\
         content-type:application%2Fjson\nhost:metricsdb.tsdb.iot.gz.baidubce.com\n\
         x-bce-date:2016-06-08T16%3A49%3A51Z"
    );
    let creds = credentials();
    assert!(verify(&req, &creds, tv_now()).is_ok());
    Ok(())
}

#[test]
fn tv_a3_presigned_sql_url() -> TestResult {
    let h = headers(&[("host", TSDB_HOST)])?;
    let req = get("/v1/row", Some(TV_A3_QUERY), &h);
    assert_eq!(
        canonical_request(&req, &["host"]),
        "GET\n/v1/row\nsql=select%20%2A%20from%20cpu_idle\nhost:metricsdb.tsdb.iot.gz.baidubce.com"
    );
    let creds = credentials();
    assert!(verify(&req, &creds, tv_now()).is_ok());

    // The parameter name matches case-insensitively.
    let upper = TV_A3_QUERY.replace("authorization=", "Authorization=");
    assert!(verify(&get("/v1/row", Some(&upper), &h), &creds, tv_now()).is_ok());
    Ok(())
}

#[test]
fn plus_in_query_value_decodes_to_space() -> TestResult {
    let h = headers(&[("host", TSDB_HOST)])?;
    let plus = TV_A3_QUERY.replace("select%20%2A%20from%20cpu_idle", "select+*+from+cpu_idle");
    let req = get("/v1/row", Some(&plus), &h);
    assert_eq!(
        canonical_request(&req, &["host"]),
        "GET\n/v1/row\nsql=select%20%2A%20from%20cpu_idle\nhost:metricsdb.tsdb.iot.gz.baidubce.com"
    );
    assert!(verify(&req, &credentials(), tv_now()).is_ok());
    // An encoded plus stays a plus.
    let req = get("/", Some("a=1%2B2"), &h);
    assert_eq!(
        canonical_request(&req, &["host"]),
        format!("GET\n/\na=1%2B2\nhost:{TSDB_HOST}")
    );
    Ok(())
}

#[test]
fn tv_a4_database_parameter_and_port_in_host() -> TestResult {
    let h = tv_a1_headers(
        "127.0.0.1:8086",
        "bce-auth-v1/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/2016-06-08T16:49:51Z/1800/host;x-bce-date/d9070fc4e117dd4ddbf89a46c1cf73d561ada6e02b78687129f30160af5fb771",
    )?;
    let req = get(
        "/v1/metric/cpu_idle/tag",
        Some("database=metricsdb&start=1465376157"),
        &h,
    );
    let canonical = canonical_request(&req, &["host", "x-bce-date"]);
    assert_eq!(
        canonical,
        "GET\n/v1/metric/cpu_idle/tag\ndatabase=metricsdb&start=1465376157\n\
         host:127.0.0.1%3A8086\nx-bce-date:2016-06-08T16%3A49%3A51Z"
    );
    assert!(verify(&req, &credentials(), tv_now()).is_ok());
    Ok(())
}

#[test]
fn tv_a5_tampering() -> TestResult {
    let creds = credentials();
    let tampered = TV_A1_AUTH.replace("de2a", "de2b");
    let h = tv_a1_headers(TSDB_HOST, &tampered)?;
    let err = verify(&get("/v1/metric", None, &h), &creds, tv_now());
    assert_eq!(err.map(|_| ()), Err(AuthError::SignatureMismatch));

    let h = tv_a1_headers("otherdb.tsdb.iot.gz.baidubce.com", TV_A1_AUTH)?;
    let err = verify(&get("/v1/metric", None, &h), &creds, tv_now()).map(|_| ());
    assert_eq!(err, Err(AuthError::SignatureMismatch));
    let e = AuthError::SignatureMismatch;
    assert_eq!((e.status(), e.code()), (400, "SignatureDoesNotMatch"));
    Ok(())
}

#[test]
fn tv_a6_expiry_boundaries() -> TestResult {
    let creds = credentials();
    let h = tv_a1_headers(TSDB_HOST, TV_A1_AUTH)?;
    let req = get("/v1/metric", None, &h);
    assert!(verify(&req, &creds, at(2016, 6, 8, 17, 19, 51)).is_ok());
    assert_eq!(
        verify(&req, &creds, at(2016, 6, 8, 17, 19, 52)).map(|_| ()),
        Err(AuthError::Expired)
    );
    assert_eq!(
        verify(&req, &creds, at(2016, 6, 8, 16, 34, 50)).map(|_| ()),
        Err(AuthError::Expired)
    );
    // Exactly 15 minutes ahead is still tolerated.
    assert!(verify(&req, &creds, at(2016, 6, 8, 16, 34, 51)).is_ok());
    let e = AuthError::Expired;
    assert_eq!((e.status(), e.code()), (400, "RequestExpired"));
    Ok(())
}

#[test]
fn tv_a7_bad_credentials() -> TestResult {
    let creds = credentials();
    let now = tv_now();

    // Unknown key, with the original and with a recomputed signature: the
    // same answer as a wrong signature (issue 14; spec TV-A7 had 403
    // InvalidAccessKeyId, which lets keys be probed for).
    let other = "cccccccccccccccccccccccccccccccc";
    let h = tv_a1_headers(TSDB_HOST, &TV_A1_AUTH.replace(AK, other))?;
    let req = get("/v1/metric", None, &h);
    assert_eq!(
        verify(&req, &creds, now).map(|_| ()),
        Err(AuthError::SignatureMismatch)
    );
    let prefix = TSDB_PREFIX.replace(AK, other);
    let sig = sign(
        &signing_key(SK, &prefix),
        &canonical_request(&req, &["host", "x-bce-date"]),
    );
    let h = tv_a1_headers(TSDB_HOST, &format!("{prefix}/host;x-bce-date/{sig}"))?;
    let req = get("/v1/metric", None, &h);
    let err = verify(&req, &creds, now).map(|_| ());
    assert_eq!(err, Err(AuthError::SignatureMismatch));

    // Nothing supplied.
    let h = headers(&[("host", TSDB_HOST)])?;
    let err = verify(
        &get("/v1/metric", Some("database=metricsdb"), &h),
        &creds,
        now,
    )
    .map(|_| ());
    assert_eq!(err, Err(AuthError::Missing));
    assert_eq!(
        (AuthError::Missing.status(), AuthError::Missing.code()),
        (403, "AccessDenied")
    );

    // Not bce-auth-v1 at all.
    let h = tv_a1_headers(TSDB_HOST, "Bearer xyz")?;
    let err = verify(&get("/v1/metric", None, &h), &creds, now);
    assert!(matches!(err, Err(AuthError::Malformed(_))));

    // Timestamp in the wrong format.
    let h = tv_a1_headers(
        TSDB_HOST,
        "bce-auth-v1/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/2016-06-08 16:49:51/1800//abc",
    )?;
    let err = verify(&get("/v1/metric", None, &h), &creds, now);
    let Err(e) = err else {
        return Err("expected an error".into());
    };
    assert!(matches!(e, AuthError::Malformed(_)));
    assert_eq!((e.status(), e.code()), (400, "InvalidHTTPAuthHeader"));
    Ok(())
}

#[test]
fn parse_rejects_bad_authorization_strings() {
    let sig = "8b623d176d8535269c7f56ee0bdda1a6576092feac6bc7c583c887e7f996de2a";
    let bad = [
        format!("bce-auth-v2/{AK}/2016-06-08T16:49:51Z/1800/host/{sig}"),
        format!("bce-auth-v1/{AK}/2016-06-08T16:49:51Z/1800/host/{sig}/extra"),
        format!("bce-auth-v1/{AK}/2016-06-08T16:49:51Z/1800/{sig}"),
        format!("bce-auth-v1//2016-06-08T16:49:51Z/1800/host/{sig}"),
        format!("bce-auth-v1/{AK}/2016-13-08T16:49:51Z/1800/host/{sig}"),
        format!("bce-auth-v1/{AK}/2015-02-29T16:49:51Z/1800/host/{sig}"),
        format!("bce-auth-v1/{AK}/2016-06-08T24:00:00Z/1800/host/{sig}"),
        format!("bce-auth-v1/{AK}/2016-06-08T16:60:00Z/1800/host/{sig}"),
        format!("bce-auth-v1/{AK}/2016-06-08T16:49:51/1800/host/{sig}"),
        format!("bce-auth-v1/{AK}/2016-06-08T16:49:51Z/0/host/{sig}"),
        format!("bce-auth-v1/{AK}/2016-06-08T16:49:51Z/-5/host/{sig}"),
        format!("bce-auth-v1/{AK}/2016-06-08T16:49:51Z/+5/host/{sig}"),
        format!("bce-auth-v1/{AK}/2016-06-08T16:49:51Z//host/{sig}"),
        format!("bce-auth-v1/{AK}/2016-06-08T16:49:51Z/99999999999999999999/host/{sig}"),
        format!(
            "bce-auth-v1/{AK}/2016-06-08T16:49:51Z/1800/host/{}",
            &sig[1..]
        ),
        format!(
            "bce-auth-v1/{AK}/2016-06-08T16:49:51Z/1800/host/{}g",
            &sig[1..]
        ),
        String::new(),
    ];
    for s in &bad {
        assert!(
            matches!(parse_auth_string(s), Err(AuthError::Malformed(_))),
            "{s}"
        );
    }
    // Leap day and uppercase hex are fine.
    let ok = format!(
        "bce-auth-v1/{AK}/2016-02-29T00:00:00Z/1800//{}",
        sig.to_ascii_uppercase()
    );
    assert!(parse_auth_string(&ok).is_ok());
}

#[test]
fn timestamp_parsing() {
    assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        parse_timestamp("2016-06-08T16:49:51Z"),
        Some(at(2016, 6, 8, 16, 49, 51))
    );
    assert_eq!(
        parse_timestamp("2016-12-31T23:59:59Z"),
        Some(at(2017, 1, 1, 0, 0, 0) - 1)
    );
    assert_eq!(parse_timestamp("2016-04-31T00:00:00Z"), None);
    assert_eq!(parse_timestamp("2016-06-00T00:00:00Z"), None);
    assert_eq!(parse_timestamp("2016-06-08T16:49:5aZ"), None);
    assert_eq!(parse_timestamp("2016-06-08t16:49:51Z"), None);
}

#[test]
fn uppercase_signature_and_header_names_are_accepted() -> TestResult {
    let auth = TV_A1_AUTH
        .replace("host;x-bce-date", "Host;X-Bce-Date")
        .replace(
            "8b623d176d8535269c7f56ee0bdda1a6576092feac6bc7c583c887e7f996de2a",
            &"8b623d176d8535269c7f56ee0bdda1a6576092feac6bc7c583c887e7f996de2a"
                .to_ascii_uppercase(),
        );
    let h = tv_a1_headers(TSDB_HOST, &auth)?;
    assert!(verify(&get("/v1/metric", None, &h), &credentials(), tv_now()).is_ok());
    Ok(())
}

#[test]
fn repeated_headers_are_joined_and_missing_ones_skipped() -> TestResult {
    let h = headers(&[
        ("host", TSDB_HOST),
        ("x-bce-meta", " a "),
        ("x-bce-meta", "b"),
        ("x-bce-empty", " "),
    ])?;
    let req = get("/", None, &h);
    assert_eq!(
        canonical_request(&req, &["host", "x-bce-meta", "x-bce-empty", "x-bce-absent"]),
        format!("GET\n/\n\nhost:{TSDB_HOST}\nx-bce-meta:a%20%2Cb")
    );
    assert_eq!(
        canonical_request(&req, &[]),
        format!("GET\n/\n\nhost:{TSDB_HOST}\nx-bce-meta:a%20%2Cb")
    );
    Ok(())
}

#[test]
fn path_is_decoded_then_reencoded_without_panicking() -> TestResult {
    let h = headers(&[("host", TSDB_HOST)])?;
    let req = get("/v1/metric/cpu%5Fidle/field", None, &h);
    assert_eq!(
        canonical_request(&req, &["host"]),
        format!("GET\n/v1/metric/cpu_idle/field\n\nhost:{TSDB_HOST}")
    );
    let req = get("/v1/a%20b/%FF%fe", Some("%FF=%C3%28&x"), &h);
    assert_eq!(
        canonical_request(&req, &["host"]),
        format!("GET\n/v1/a%20b/%FF%FE\n%FF=%C3%28&x=\nhost:{TSDB_HOST}")
    );
    // A non-UTF-8 presigned authorization is rejected, not a panic.
    let creds = credentials();
    let err = verify(&get("/", Some("authorization=%FF"), &h), &creds, tv_now());
    assert!(matches!(err, Err(AuthError::Malformed(_))));
    Ok(())
}

#[test]
fn header_takes_precedence_over_query_parameter() -> TestResult {
    let h = tv_a1_headers(TSDB_HOST, TV_A1_AUTH)?;
    let req = get("/v1/metric", Some("authorization=garbage"), &h);
    assert!(verify(&req, &credentials(), tv_now()).is_ok());
    Ok(())
}

#[test]
fn database_permission() -> TestResult {
    let cred = Credential {
        access_key_id: AK.to_owned(),
        secret_access_key: SK.to_owned(),
        databases: vec!["metricsdb".to_owned()],
    };
    assert!(!format!("{cred:?}").contains(SK));
    let store = Store::new(&sundial_api::access::Config::default(), [cred.to_key()])?;
    let id = store.check_secret(AK, SK).ok_or("key")?;
    assert!(id.may("metricsdb", Action::Read) && id.may("metricsdb", Action::Write));
    assert!(!id.may("metricsdb", Action::Admin) && !id.may("otherdb", Action::Read));
    Ok(())
}

#[test]
fn validity_period_has_a_maximum() -> TestResult {
    let h = tv_a1_headers(TSDB_HOST, TV_A1_AUTH)?;
    let req = get("/v1/metric", None, &h);
    let mut store = credentials();
    store.max_signature_secs = 1799;
    let err = verify(&req, &store, tv_now()).map(|_| ());
    assert_eq!(
        err,
        Err(AuthError::TooLong {
            claimed: 1800,
            max: 1799
        })
    );
    store.max_signature_secs = 1800;
    assert!(verify(&req, &store, tv_now()).is_ok());
    Ok(())
}

fn key_id(identity: &Identity) -> String {
    match identity {
        Identity::Key(p) => p.access_key_id().to_owned(),
        Identity::Open => String::new(),
    }
}

#[test]
fn client_signatures_verify() -> TestResult {
    let query = Some("database=metricsdb&sql=select%201");
    let a = authorization(
        "GET",
        "/v1/row",
        query,
        TSDB_HOST,
        AK,
        SK,
        "2016-06-08T16:49:51Z",
        1800,
    );
    let h = headers(&[("host", TSDB_HOST), ("authorization", &a)])?;
    assert!(verify(&get("/v1/row", query, &h), &credentials(), tv_now()).is_ok());
    let h = headers(&[("host", "other.example"), ("authorization", &a)])?;
    assert_eq!(
        verify(&get("/v1/row", query, &h), &credentials(), tv_now()).map(|_| ()),
        Err(AuthError::SignatureMismatch)
    );
    Ok(())
}
