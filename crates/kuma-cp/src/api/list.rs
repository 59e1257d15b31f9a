//! List queries: `size`/`offset` paging, `filter[label.<key>]=<value>`
//! filters, and the `next` link.

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use axum::http::StatusCode;
use kuma_api::Kind;
use kuma_store::ListQuery;

use super::Problem;

const DEFAULT_PAGE_SIZE: usize = 100;
const MAX_PAGE_SIZE: usize = 1000;
const TITLE: &str = "Could not retrieve resources";

/// A list request as the client wrote it.
#[derive(Debug)]
pub struct ListRequest {
    pub size: usize,
    pub offset: usize,
    pub labels: BTreeMap<String, String>,
    /// Every query pair, to rebuild the `next` link.
    pairs: Vec<(String, String)>,
}

impl ListRequest {
    /// `route` is the path template used in error fields, as Kuma names them
    /// (`/meshes/{mesh}/dataplanes`).
    pub fn parse(raw_query: Option<&str>, route: &str) -> Result<ListRequest, Problem> {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(raw_query.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        let mut req = ListRequest {
            size: DEFAULT_PAGE_SIZE,
            offset: 0,
            labels: BTreeMap::new(),
            pairs: pairs.clone(),
        };
        for (key, value) in pairs {
            match key.as_str() {
                "size" => req.size = parse_size(&value)?,
                "offset" if value.is_empty() => {}
                "offset" => {
                    req.offset = value.parse().map_err(|_| {
                        Problem::new(StatusCode::BAD_REQUEST, TITLE, "Invalid offset")
                            .with_parameter("offset", "invalid format")
                    })?
                }
                k if k.starts_with("filter[") && k.ends_with(']') => {
                    let inner = &k["filter[".len()..k.len() - 1];
                    match inner.strip_prefix("label.") {
                        Some(label) if !label.is_empty() => {
                            req.labels.insert(label.to_string(), value);
                        }
                        _ => {
                            return Err(Problem::invalid(TITLE, &[]).with_parameter(
                                &format!("{route}.{k}"),
                                "filters are only supported on labels",
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(req)
    }

    pub fn query(&self, kind: Kind, mesh: Option<&str>) -> ListQuery {
        ListQuery {
            kind,
            mesh: mesh.map(str::to_string),
            labels: self.labels.clone(),
            offset: self.offset,
            limit: Some(self.size),
        }
    }

    /// The link to the page after this one, or `None` on the last page.
    pub fn next_link(&self, headers: &HeaderMap, path: &str, total: usize) -> Option<String> {
        let next = self.offset + self.size;
        if next >= total {
            return None;
        }
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        let mut pairs: Vec<(String, String)> = self
            .pairs
            .iter()
            .filter(|(k, _)| k != "offset")
            .cloned()
            .collect();
        pairs.push(("offset".into(), next.to_string()));
        // Sorted by key, as Go's url.Values.Encode does in Kuma.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        Some(format!("http://{host}{path}?{query}"))
    }
}

fn parse_size(value: &str) -> Result<usize, Problem> {
    let invalid = |reason: String| {
        Problem::new(StatusCode::BAD_REQUEST, TITLE, "Invalid page size")
            .with_parameter("size", &reason)
    };
    let size: i64 = value
        .parse()
        .map_err(|_| invalid("invalid format".into()))?;
    if size <= 0 {
        return Err(invalid("must be greater than 0".into()));
    }
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if size > MAX_PAGE_SIZE {
        return Err(invalid(format!(
            "invalid page size of {size}. Maximum page size is {MAX_PAGE_SIZE}"
        )));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paging_and_label_filters() {
        let r =
            ListRequest::parse(Some("size=2&offset=4&filter%5Blabel.app%5D=web"), "/x").unwrap();
        assert_eq!((r.size, r.offset), (2, 4));
        assert_eq!(r.labels.get("app").map(String::as_str), Some("web"));
        let mut h = HeaderMap::new();
        h.insert("host", "cp:5681".parse().unwrap());
        assert_eq!(
            r.next_link(&h, "/meshes", 7).as_deref(),
            Some("http://cp:5681/meshes?filter%5Blabel.app%5D=web&offset=6&size=2")
        );
        assert_eq!(r.next_link(&h, "/meshes", 6), None);
    }

    #[test]
    fn rejects_bad_sizes_and_filters() {
        for bad in ["size=0", "size=abc", "size=1001"] {
            let p = ListRequest::parse(Some(bad), "/x").unwrap_err();
            assert_eq!(p.status, 400);
            assert_eq!(p.invalid_parameters[0].field, "size");
        }
        let p =
            ListRequest::parse(Some("filter[name]=a"), "/meshes/{mesh}/dataplanes").unwrap_err();
        assert_eq!(
            p.invalid_parameters[0].field,
            "/meshes/{mesh}/dataplanes.filter[name]"
        );
    }
}
