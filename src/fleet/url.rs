//! Where the fleet's store is: `s3://BUCKET/PREFIX`, an optional endpoint (MinIO, moto, any
//! S3-compatible store) and the standard AWS variables for region and credentials.

use super::FleetError;
use std::time::Duration;

/// `s3://BUCKET/PREFIX` parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUrl {
    pub bucket: String,
    /// Without leading or trailing `/`; may be empty.
    pub prefix: String,
}

impl StoreUrl {
    pub fn parse(url: &str) -> Result<StoreUrl, FleetError> {
        let bad = |why| FleetError::BadUrl {
            url: url.to_owned(),
            why,
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("it must start with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // S3's bucket naming rules: 3 to 63 of lowercase letters, digits, '-' and '.'.
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            return Err(bad(
                "the bucket must be 3 to 63 lowercase letters, digits, '-' or '.'",
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.len() > 512 {
            return Err(bad("the prefix is longer than 512 bytes"));
        }
        let prefix_ok = prefix.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        });
        if !prefix.is_empty() && !prefix_ok {
            return Err(bad(
                "each part of the prefix must be ASCII letters, digits, '-', '_' or '.'",
            ));
        }
        Ok(StoreUrl {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// Everything needed to reach the store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub url: StoreUrl,
    /// `--endpoint`; else `AWS_ENDPOINT_URL`/`AWS_ENDPOINT`, else AWS itself.
    pub endpoint: Option<String>,
    /// How long one request may take before it is given up (and retried).
    pub request_timeout: Duration,
    /// Attempts of the client's own retries (5xx, connection errors) per request.
    pub client_retries: usize,
}

impl StoreConfig {
    pub fn new(url: StoreUrl, endpoint: Option<String>) -> StoreConfig {
        StoreConfig {
            url,
            endpoint,
            request_timeout: Duration::from_secs(60),
            client_retries: 3,
        }
    }

    pub(crate) fn build(&self) -> Result<object_store::aws::AmazonS3, FleetError> {
        use object_store::aws::AmazonS3Builder;
        use object_store::{BackoffConfig, ClientOptions, RetryConfig};
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&self.url.bucket);
        let endpoint = self
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT").ok());
        let mut options = ClientOptions::new()
            .with_timeout(self.request_timeout)
            .with_connect_timeout(Duration::from_secs(5));
        if let Some(endpoint) = endpoint {
            check_endpoint(&endpoint)?;
            if endpoint.starts_with("http://") {
                options = options.with_allow_http(true);
            }
            builder = builder.with_endpoint(endpoint);
        }
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            builder = builder.with_region("us-east-1");
        }
        builder
            .with_client_options(options)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(2),
                    base: 2.0,
                },
                max_retries: self.client_retries,
                retry_timeout: Duration::from_secs(30),
            })
            .build()
            .map_err(|source| FleetError::Client {
                url: self.url.to_string(),
                source,
            })
    }
}

/// An endpoint is an http(s) URL with a host: anything else is refused here, with how to
/// write one, rather than reaching the S3 client (which panics on a URI it cannot parse).
fn check_endpoint(endpoint: &str) -> Result<(), FleetError> {
    let ok = url::Url::parse(endpoint).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
    });
    if ok {
        Ok(())
    } else {
        Err(FleetError::Endpoint {
            endpoint: endpoint.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, expected: Option<(&str, &str)>) {
        let got = StoreUrl::parse(url).ok();
        let got = got.as_ref().map(|u| (u.bucket.as_str(), u.prefix.as_str()));
        assert_eq!(got, expected, "{url}");
    }

    #[test]
    fn store_urls() {
        check("s3://fleet/prod/east", Some(("fleet", "prod/east")));
        check("s3://fleet/prod/", Some(("fleet", "prod")));
        check("s3://fleet", Some(("fleet", "")));
        check("s3://fleet/", Some(("fleet", "")));
        check("https://fleet/prod", None);
        check("s3://Fleet/prod", None);
        check("s3://ab/prod", None);
        check("s3://fleet/a/../b", None);
        check("s3://fleet/a//b", None);
        check("s3://fleet/a b", None);
    }

    #[test]
    fn an_endpoint_must_be_an_http_url_with_a_host() {
        for ok in [
            "http://127.0.0.1:9000",
            "https://s3.example.jp",
            "http://minio:9000/",
        ] {
            assert!(super::check_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in [
            "notaurl",
            "127.0.0.1:9000",
            "ftp://h",
            "http://",
            "http:// x",
            "",
        ] {
            let e = super::check_endpoint(bad).unwrap_err().to_string();
            assert!(e.contains("--endpoint http://"), "{bad}: {e}");
        }
    }
}
