//! One parser per kind of value: each takes the value as given and returns the typed value or
//! the reason it is bad.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{DurationError, ExecHandler, LogFormat, ManifestValidation, Reserved, ValueError};

pub(super) type Parsed<T> = Result<T, ValueError>;

pub(super) fn non_empty(v: &str) -> Parsed<String> {
    if v.trim().is_empty() {
        return Err(ValueError::Empty);
    }
    Ok(v.to_string())
}

pub(super) fn path(v: &str) -> Parsed<PathBuf> {
    non_empty(v).map(PathBuf::from)
}

/// An empty value is `None`, anything else goes through `parse`.
pub(super) fn optional<T>(v: &str, parse: fn(&str) -> Parsed<T>) -> Parsed<Option<T>> {
    if v.is_empty() {
        return Ok(None);
    }
    parse(v).map(Some)
}

pub(super) fn manifest_dir(v: &str) -> Parsed<PathBuf> {
    let dir = path(v)?;
    match std::fs::metadata(&dir) {
        Ok(meta) if meta.is_dir() => Ok(dir),
        Ok(_) => Err(ValueError::NotADirectory),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ValueError::NoSuchDirectory),
        Err(e) => Err(ValueError::Unreadable(e)),
    }
}

pub(super) fn ip_address(v: &str) -> Parsed<IpAddr> {
    v.parse().map_err(|_| ValueError::NotAnIp)
}

pub(super) fn existing_file(v: &str) -> Parsed<PathBuf> {
    let file = PathBuf::from(v);
    if !file.is_file() {
        return Err(ValueError::NoSuchFile);
    }
    Ok(file)
}

pub(super) fn absolute_path(v: &str) -> Parsed<PathBuf> {
    let p = PathBuf::from(v);
    if !p.is_absolute() {
        return Err(ValueError::NotAbsolute);
    }
    Ok(p)
}

pub(super) fn docker_endpoint(v: &str) -> Parsed<String> {
    let rest = ["unix://", "tcp://", "http://"]
        .iter()
        .find_map(|scheme| v.strip_prefix(scheme));
    match rest {
        Some(rest) if !rest.is_empty() => Ok(v.to_string()),
        _ => Err(ValueError::NotAnEndpoint),
    }
}

pub(super) fn http_url(v: &str) -> Parsed<String> {
    let rest = v
        .strip_prefix("http://")
        .or_else(|| v.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() => Ok(v.to_string()),
        _ => Err(ValueError::NotAnHttpUrl),
    }
}

pub(super) fn qps(v: &str) -> Parsed<f64> {
    match v.parse::<f64>() {
        Ok(q) if q.is_finite() && q >= 0.0 => Ok(q),
        _ => Err(ValueError::NotANonNegativeNumber),
    }
}

/// `cpu=500m,memory=1Gi` (`--system-reserved`, `--kube-reserved`); empty:
/// nothing reserved.
pub(super) fn reserved(v: &str) -> Parsed<Reserved> {
    use crate::spec::resources::{parse_bytes, parse_cpu_millis};
    let mut r = Reserved::default();
    for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let bad = |why: String| ValueError::NotAReservation(why);
        let (name, quantity) = item
            .split_once('=')
            .ok_or_else(|| bad(format!("{item:?} has no '='")))?;
        match name.trim() {
            "cpu" => {
                r.cpu_millis =
                    parse_cpu_millis(quantity.trim()).map_err(|e| bad(format!("cpu: {e}")))?
            }
            "memory" => {
                r.memory_bytes =
                    parse_bytes(quantity.trim()).map_err(|e| bad(format!("memory: {e}")))?
            }
            other => return Err(bad(format!("unknown resource {other:?}"))),
        }
    }
    Ok(r)
}

/// One `key=value` of `--node-labels`, checked as Kubernetes checks label
/// keys (an optional DNS subdomain prefix and `/`, then a name) and values.
pub(super) fn node_label(v: &str) -> Parsed<(String, String)> {
    let bad = |why: String| ValueError::NotALabel(why);
    let (key, value) = v
        .split_once('=')
        .ok_or_else(|| bad(format!("{v:?} has no '='")))?;
    // A name: at most 63 of [A-Za-z0-9-_.], alphanumeric at both ends.
    let is_name = |s: &str| {
        s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            })
    });
    if !prefix_ok || !is_name(name) {
        return Err(bad(format!("{key:?} is no label key")));
    }
    if !value.is_empty() && !is_name(value) {
        return Err(bad(format!("{value:?} is no label value")));
    }
    Ok((key.to_string(), value.to_string()))
}

pub(super) fn at_least_one(v: &str) -> Parsed<u32> {
    match v.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(ValueError::NotAtLeastOne),
    }
}

/// A whole percent, 0 to 100.
pub(super) fn percent(v: &str) -> Parsed<u8> {
    match v.parse::<u8>() {
        Ok(n) if n <= 100 => Ok(n),
        _ => Err(ValueError::NotAPercent),
    }
}

pub(super) fn integer(v: &str) -> Parsed<i64> {
    v.parse().map_err(|_| ValueError::NotAnInteger)
}

/// A size in bytes, at least 1: a whole number with an optional suffix, decimal
/// (`k`, `M`, `G`) or binary (`Ki`, `Mi`, `Gi`), as Kubernetes quantities write them.
pub(super) fn byte_size(v: &str) -> Parsed<u64> {
    let units: [(&str, u64); 6] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ];
    let (number, unit) = units
        .iter()
        .find_map(|(suffix, unit)| Some((v.strip_suffix(suffix)?, *unit)))
        .unwrap_or((v, 1));
    let digits = !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit());
    match number.parse::<u64>().ok().and_then(|n| n.checked_mul(unit)) {
        Some(n) if digits && n >= 1 => Ok(n),
        _ => Err(ValueError::NotAByteSize),
    }
}

pub(super) fn port(v: &str) -> Parsed<u16> {
    match v.parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(ValueError::NotAPort),
    }
}

/// A port number, or 0 for "off".
pub(super) fn port_or_zero(v: &str) -> Parsed<u16> {
    v.parse::<u16>().map_err(|_| ValueError::NotAPortOrZero)
}

/// Booleans as Go's `strconv.ParseBool` (the kubelet's) reads them.
pub(super) fn boolean(v: &str) -> Parsed<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(ValueError::NotABoolean),
    }
}

pub(super) fn exec_handler(v: &str) -> Parsed<ExecHandler> {
    match v {
        "native" => Ok(ExecHandler::Native),
        "nsenter" => Ok(ExecHandler::Nsenter),
        _ => Err(ValueError::NotAnExecHandler),
    }
}

pub(super) fn manifest_validation(v: &str) -> Parsed<ManifestValidation> {
    match v {
        "strict" => Ok(ManifestValidation::Strict),
        "warn" => Ok(ManifestValidation::Warn),
        _ => Err(ValueError::NotAManifestValidation),
    }
}

pub(super) fn log_format(v: &str) -> Parsed<LogFormat> {
    match v {
        "plain" => Ok(LogFormat::Plain),
        "json" => Ok(LogFormat::Json),
        _ => Err(ValueError::NotALogFormat),
    }
}

/// `Name:Value`; both sides are trimmed, the name must be an HTTP token.
pub(super) fn header(v: &str) -> Parsed<(String, String)> {
    let Some((name, value)) = v.split_once(':') else {
        return Err(ValueError::NotAHeader);
    };
    let (name, value) = (name.trim(), value.trim());
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(ValueError::BadHeaderName);
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(ValueError::BadHeaderValue);
    }
    Ok((name.to_string(), value.to_string()))
}

/// Lowercased, then checked as a DNS-1123 subdomain, as the kubelet does with hostnames.
pub(super) fn node_name(v: &str) -> Parsed<String> {
    let name = v.trim().to_lowercase();
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(ValueError::NotASubdomain);
    }
    Ok(name)
}

/// A DNS domain (`cluster.local`): as [`node_name`], a trailing dot dropped.
pub(super) fn domain_name(v: &str) -> Parsed<String> {
    node_name(v.trim().trim_end_matches('.'))
}

pub(super) fn positive_duration(v: &str) -> Parsed<Duration> {
    match parse_duration(v)? {
        Duration::ZERO => Err(ValueError::NotPositive),
        d => Ok(d),
    }
}

/// Parses a duration as Go's `time.ParseDuration` does, negative ones excepted: a sequence of
/// decimal numbers, each with a unit among `ns`, `us`/`µs`, `ms`, `s`, `m`, `h` (`1m30s`,
/// `1.5h`, `500ms`). A number without a unit is refused, except `0`.
pub fn parse_duration(v: &str) -> Result<Duration, DurationError> {
    if v == "0" {
        return Ok(Duration::ZERO);
    }
    if v.starts_with('-') {
        return Err(DurationError::Negative);
    }
    let mut rest = v.strip_prefix('+').unwrap_or(v);
    if rest.is_empty() {
        return Err(DurationError::Malformed);
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let int_len = digits(rest);
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(after) => after.split_at(digits(after)),
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(DurationError::Malformed);
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(DurationError::Malformed),
        };
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| DurationError::Malformed)?
        };
        let frac = &frac[..frac.len().min(18)];
        let frac_value: u128 = if frac.is_empty() {
            0
        } else {
            frac.parse().map_err(|_| DurationError::Malformed)?
        };
        let scaled = frac_value * nanos / 10u128.pow(frac.len() as u32);
        total = int
            .checked_mul(nanos)
            .and_then(|n| n.checked_add(scaled))
            .and_then(|n| n.checked_add(total))
            .filter(|n| *n <= u128::from(u64::MAX))
            .ok_or(DurationError::TooLarge)?;
        rest = after;
    }
    // `total` is at most u64::MAX by the filter above.
    Ok(Duration::from_nanos(
        u64::try_from(total).unwrap_or(u64::MAX),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{err, Fixture};
    use super::super::*;
    use std::time::Duration;

    #[test]
    fn missing_or_file_manifest_dir_refused() {
        let f = Fixture::new();
        let missing = f.dir.path().join("nope");
        let e = err(f.resolve(
            &[&format!("--pod-manifest-path={}", missing.display())],
            &[],
        ));
        assert!(
            e.contains("--pod-manifest-path") && e.contains(&missing.display().to_string()),
            "{e}"
        );
        assert!(e.contains("no such directory"), "{e}");
        let file = f.file("plain", "");
        let e = err(f.resolve(&[&format!("--pod-manifest-path={}", file.display())], &[]));
        assert!(
            e.contains("not a directory") && e.contains(&file.display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn bool_flag_forms() {
        let f = Fixture::new();
        let s = f.resolve(
            &[
                "--serialize-image-pulls=false",
                "--allow-privileged",
                "--cpu-cfs-quota=false",
            ],
            &[],
        );
        let s = s.expect("resolves");
        assert!(!s.serialize_image_pulls && s.allow_privileged && !s.cpu_cfs_quota);
        let s = f
            .resolve(&["--allow-privileged=true", "--serialize-image-pulls"], &[])
            .expect("resolves");
        assert!(s.allow_privileged && s.serialize_image_pulls);
        let e = err(f.resolve(&["--allow-privileged=yes"], &[]));
        assert!(
            e.contains("--allow-privileged") && e.contains("\"yes\""),
            "{e}"
        );
    }

    #[test]
    fn durations() {
        let ok = [
            ("500ms", 500),
            ("10s", 10_000),
            ("1m", 60_000),
            ("1m30s", 90_000),
            ("2h", 7_200_000),
            ("1.5s", 1_500),
            ("0", 0),
            ("0s", 0),
        ];
        for (text, millis) in ok {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(millis)),
                "{text}"
            );
        }
        for bad in ["10", "ten", "-1s", "", "1x", "s", "1m30", "1d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn duration_flags() {
        let f = Fixture::new();
        let s = f
            .resolve(
                &[
                    "--sync-frequency=1m30s",
                    "--minimum-container-ttl-duration=0s",
                ],
                &[],
            )
            .expect("resolves");
        assert_eq!(s.sync_frequency, Duration::from_secs(90));
        assert_eq!(s.minimum_container_ttl_duration, Duration::ZERO);
        let e = err(f.resolve(&["--file-check-frequency=10"], &[]));
        assert!(
            e.starts_with("invalid value \"10\" for --file-check-frequency:"),
            "{e}"
        );
        let e = err(f.resolve(&["--sync-frequency=0s"], &[]));
        assert!(e.contains("must be greater than 0"), "{e}");
        let e = err(f.resolve(&[], &[("PODVISOR_HTTP_CHECK_FREQUENCY", "-1s")]));
        assert!(
            e.contains("negative") && e.contains("PODVISOR_HTTP_CHECK_FREQUENCY"),
            "{e}"
        );
    }

    #[test]
    fn negative_qps_names_flag_value_and_env() {
        let f = Fixture::new();
        let e = err(f.resolve(&[], &[("PODVISOR_REGISTRY_QPS", "-1")]));
        assert_eq!(
            e,
            "invalid value \"-1\" for --registry-qps: must be a number >= 0 (from environment PODVISOR_REGISTRY_QPS)"
        );
        let e = err(f.resolve(&["--registry-qps=-1"], &[]));
        assert!(e.ends_with("(from command line)"), "{e}");
        for bad in ["NaN", "inf", "fast"] {
            assert!(
                f.resolve(&[&format!("--registry-qps={bad}")], &[]).is_err(),
                "{bad}"
            );
        }
        let s = f.resolve(&["--registry-qps=0"], &[]).expect("0 = no limit");
        assert_eq!(s.registry_qps, 0.0);
    }

    #[test]
    fn burst_must_be_positive() {
        let f = Fixture::new();
        let e = err(f.resolve(&["--registry-burst=0"], &[]));
        assert!(e.contains("--registry-burst") && e.contains("\"0\""), "{e}");
    }

    #[test]
    fn exec_handler_values() {
        let f = Fixture::new();
        let s = f
            .resolve(&["--docker-exec-handler=nsenter"], &[])
            .expect("resolves");
        assert_eq!(s.docker_exec_handler, ExecHandler::Nsenter);
        let e = err(f.resolve(&["--docker-exec-handler=ssh"], &[]));
        assert!(
            e.contains("--docker-exec-handler")
                && e.contains("\"ssh\"")
                && e.contains("native or nsenter"),
            "{e}"
        );
    }

    #[test]
    fn manifest_validation_values() {
        let f = Fixture::new();
        let s = f.resolve(&[], &[]).expect("resolves");
        assert_eq!(s.manifest_validation, ManifestValidation::Strict);
        let s = f
            .resolve(&["--manifest-validation=warn"], &[])
            .expect("resolves");
        assert_eq!(s.manifest_validation, ManifestValidation::Warn);
        let e = err(f.resolve(&["--manifest-validation=lax"], &[]));
        assert!(
            e.contains("--manifest-validation")
                && e.contains("\"lax\"")
                && e.contains("strict or warn"),
            "{e}"
        );
    }

    #[test]
    fn headers_repeated_or_comma_separated() {
        let f = Fixture::new();
        let s = f
            .resolve(
                &[
                    "--manifest-url-header=A:1",
                    "--manifest-url-header=B: two,C:x:y",
                ],
                &[],
            )
            .expect("resolves");
        let pairs = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            s.manifest_url_header,
            pairs(&[("A", "1"), ("B", "two"), ("C", "x:y")])
        );
        let s = f
            .resolve(&[], &[("PODVISOR_MANIFEST_URL_HEADER", "X-Token:abc")])
            .expect("resolves");
        assert_eq!(s.manifest_url_header, pairs(&[("X-Token", "abc")]));
        let e = err(f.resolve(&["--manifest-url-header=novalue"], &[]));
        assert!(
            e.contains("--manifest-url-header") && e.contains("\"novalue\""),
            "{e}"
        );
        assert!(f
            .resolve(&["--manifest-url-header=Bad Name:1"], &[])
            .is_err());
    }

    #[test]
    fn optional_strings() {
        let f = Fixture::new();
        let s = f
            .resolve(&["--network-plugin=", "--manifest-url="], &[])
            .expect("resolves");
        assert_eq!((s.network_plugin, s.manifest_url), (None, None));
        let s = f
            .resolve(
                &["--network-plugin=cni", "--manifest-url=https://x/pods"],
                &[],
            )
            .expect("resolves");
        assert_eq!(s.network_plugin.as_deref(), Some("cni"));
        assert_eq!(s.manifest_url.as_deref(), Some("https://x/pods"));
        let e = err(f.resolve(&["--manifest-url=ftp://x"], &[]));
        assert!(
            e.contains("--manifest-url") && e.contains("\"ftp://x\""),
            "{e}"
        );
    }

    #[test]
    fn node_name_rules() {
        let f = Fixture::new();
        assert_eq!(
            f.resolve(&["--node-name=Node-1.Example"], &[])
                .expect("ok")
                .node_name,
            "node-1.example"
        );
        for bad in ["my_host", "-a", "a..b", "a-"] {
            let e = err(f.resolve(&[&format!("--node-name={bad}")], &[]));
            assert!(e.contains("--node-name") && e.contains("DNS-1123"), "{e}");
        }
    }

    #[test]
    fn the_secure_and_read_only_ports_and_their_credentials() {
        let f = Fixture::new();
        let s = f.resolve(&[], &[]).expect("resolves");
        assert_eq!((s.port, s.read_only_port), (10250, 10255));
        assert_eq!(
            (s.tls_cert_file.as_ref(), s.write_kubeconfig.as_ref()),
            (None, None)
        );
        let s = f.resolve(&["--read-only-port=0"], &[]).expect("0 is off");
        assert_eq!(s.read_only_port, 0);
        let e = err(f.resolve(&["--read-only-port=x"], &[]));
        assert!(
            e.contains("--read-only-port") && e.contains("or 0 for off"),
            "{e}"
        );
        let cert = f.file("c.pem", "x");
        let e = err(f.resolve(&[&format!("--tls-cert-file={}", cert.display())], &[]));
        assert_eq!(e, "--tls-cert-file requires --tls-private-key-file");
        let e = err(f.resolve(&["--token-auth-file=/nonexistent/tokens.csv"], &[]));
        assert!(e.contains("--token-auth-file"), "{e}");
        let s = f
            .resolve(
                &[
                    &format!("--tls-cert-file={}", cert.display()),
                    &format!("--tls-private-key-file={}", cert.display()),
                    "--write-kubeconfig=/tmp/kc",
                ],
                &[],
            )
            .expect("both given");
        assert_eq!(s.tls_private_key_file, Some(cert));
        assert_eq!(s.write_kubeconfig, Some("/tmp/kc".into()));
    }

    #[test]
    fn address_port_endpoint() {
        let f = Fixture::new();
        let s = f
            .resolve(&["--address=::1", "--port=8080"], &[])
            .expect("resolves");
        assert_eq!((s.address, s.port), ("::1".parse().expect("ip"), 8080));
        assert!(err(f.resolve(&["--port=0"], &[])).contains("--port"));
        assert!(err(f.resolve(&["--port=70000"], &[])).contains("\"70000\""));
        assert!(err(f.resolve(&["--address=localhost"], &[])).contains("--address"));
        let e = err(f.resolve(&["--docker-endpoint=/var/run/docker.sock"], &[]));
        assert!(
            e.contains("--docker-endpoint") && e.contains("unix://"),
            "{e}"
        );
    }

    #[test]
    fn byte_sizes() {
        use super::byte_size;
        for (v, n) in [
            ("1", 1),
            ("4194304", 4 << 20),
            ("512Ki", 512 << 10),
            ("4Mi", 4 << 20),
            ("1Gi", 1 << 30),
            ("2k", 2000),
            ("3M", 3_000_000),
            ("1G", 1_000_000_000),
        ] {
            assert_eq!(byte_size(v).ok(), Some(n), "{v}");
        }
        for v in [
            "",
            "0",
            "0Mi",
            "-1",
            "+1",
            "1.5Mi",
            "Mi",
            "4 Mi",
            "4mi",
            "99999999999Gi",
        ] {
            assert!(matches!(byte_size(v), Err(ValueError::NotAByteSize)), "{v}");
        }
    }

    #[test]
    fn dead_container_limits_take_any_integer() {
        let f = Fixture::new();
        let s = f
            .resolve(
                &[
                    "--maximum-dead-containers=-1",
                    "--maximum-dead-containers-per-container=0",
                ],
                &[],
            )
            .expect("resolves");
        assert_eq!(
            (
                s.maximum_dead_containers,
                s.maximum_dead_containers_per_container
            ),
            (-1, 0)
        );
        assert!(err(f.resolve(&["--maximum-dead-containers=1.5"], &[])).contains("integer"));
    }

    #[test]
    fn node_labels_are_key_value_pairs_as_kubernetes_spells_them() {
        use super::node_label;
        assert_eq!(
            node_label("disk=ssd").unwrap(),
            ("disk".to_string(), "ssd".to_string())
        );
        assert_eq!(
            node_label("example.com/zone=").unwrap(),
            ("example.com/zone".to_string(), String::new())
        );
        for bad in ["disk", "-x=1", "x=a b", "Bad_Prefix/x=1", "/x=1", "x=-"] {
            let e = node_label(bad).unwrap_err().to_string();
            assert!(
                e.starts_with("must be a list of key=value labels"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn reservations_read_cpu_and_memory_and_name_what_is_wrong() {
        use super::reserved;
        let r = reserved("cpu=500m, memory=1Gi").unwrap();
        assert_eq!((r.cpu_millis, r.memory_bytes), (500, 1 << 30));
        assert_eq!(reserved("").unwrap(), Reserved::default());
        let e = reserved("gpu=1").unwrap_err().to_string();
        assert!(e.contains("unknown resource \"gpu\""), "{e}");
        let e = reserved("cpu").unwrap_err().to_string();
        assert!(e.contains("no '='"), "{e}");
        let e = reserved("memory=lots").unwrap_err().to_string();
        assert!(e.contains("memory:"), "{e}");
    }

    #[test]
    fn image_gc_thresholds_are_percents_with_low_below_high() {
        let f = Fixture::new();
        let s = f.resolve(&[], &[]).expect("resolves");
        assert_eq!(
            (
                s.image_gc_high_threshold,
                s.image_gc_low_threshold,
                s.minimum_image_ttl_duration,
                s.image_gc_all_images,
                s.image_gc_period,
            ),
            (
                85,
                80,
                Duration::from_secs(120),
                false,
                Duration::from_secs(300)
            )
        );
        let s = f
            .resolve(
                &[
                    "--image-gc-high-threshold=100",
                    "--image-gc-low-threshold=0",
                    "--image-gc-all-images",
                ],
                &[],
            )
            .expect("resolves");
        assert_eq!(
            (s.image_gc_high_threshold, s.image_gc_low_threshold),
            (100, 0)
        );
        assert!(s.image_gc_all_images);
        let e = err(f.resolve(&["--image-gc-high-threshold=101"], &[]));
        assert!(
            e.contains("--image-gc-high-threshold") && e.contains("0 to 100"),
            "{e}"
        );
        let e = err(f.resolve(&["--image-gc-low-threshold=-1"], &[]));
        assert!(e.contains("--image-gc-low-threshold"), "{e}");
        let e = err(f.resolve(&["--image-gc-low-threshold=85"], &[]));
        assert!(
            e.contains("--image-gc-low-threshold=85 must be below --image-gc-high-threshold=85"),
            "{e}"
        );
    }
}
