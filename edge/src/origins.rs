//! Which origin a request goes to, when the edge has several (`ORIGIN_URLS`).
//!
//! Origins are stateless (stock is in Redis, orders in MySQL), so any origin can answer any
//! request; a user is still kept on one origin ("sticky") so that a user's requests share
//! that origin's connections and in-memory answers. The order is rendezvous hashing: each
//! (user, origin) pair gets a score and the user tries origins from the highest score down.
//! Every edge instance computes the same order without sharing anything, and removing one
//! origin moves only the users whose first choice it was.
//!
//! When the first choice cannot be reached the edge tries the next one. That is safe for every
//! route it forwards, even if the first origin did receive the request: a buy is one per user
//! and product (the Redis script refuses a second, so a retried buy is bought once or answers
//! `ALREADY_BOUGHT`), paying a paid order answers PAID again, and the rest only read or sign.

/// The origins in `ORIGIN_URLS` (comma-separated) or, without it, `ORIGIN_URL`: each an
/// `http(s)://` URL, trailing slashes dropped, no duplicates. The error names the bad entry.
pub fn parse_origin_urls(origin_urls: Option<&str>, origin_url: Option<&str>) -> Result<Vec<String>, String> {
    let (name, raw) = match (origin_urls.filter(|v| !v.trim().is_empty()), origin_url) {
        (Some(list), _) => ("ORIGIN_URLS", list),
        (None, Some(one)) => ("ORIGIN_URL", one),
        (None, None) => return Err("neither ORIGIN_URLS nor ORIGIN_URL is set".into()),
    };
    let mut urls: Vec<String> = Vec::new();
    for entry in raw.split(',').map(str::trim) {
        let url = entry.trim_end_matches('/');
        let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
        let host_ok =
            url.split_once("://").is_some_and(|(_, rest)| !rest.is_empty() && !rest.contains(char::is_whitespace));
        if !scheme_ok || !host_ok {
            return Err(format!("{name}: {entry:?} is not an http(s) URL"));
        }
        if urls.iter().any(|u| u == url) {
            return Err(format!("{name}: {url} is listed twice"));
        }
        urls.push(url.to_owned());
    }
    Ok(urls)
}

/// FNV-1a, 64 bits: stable across builds and instances (unlike std's hasher), and plenty for
/// spreading users.
pub(crate) fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in *part {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator, so ("ab", "c") and ("a", "bc") differ.
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The order in which the request keyed `key` (the signed-in user, else the request id) tries
/// `origins`: indexes into it, every origin once, the sticky choice first.
pub fn preference(key: &str, origins: &[String]) -> Vec<usize> {
    let mut scored: Vec<(u64, usize)> =
        origins.iter().enumerate().map(|(i, url)| (fnv1a(&[key.as_bytes(), url.as_bytes()]), i)).collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().map(|(_, i)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("http://127.0.0.1:{}", 8080 + i)).collect()
    }

    #[test]
    fn origin_urls_come_from_the_list_or_the_single_url() {
        assert_eq!(
            parse_origin_urls(Some(" http://a:1/ , https://b:2"), Some("http://ignored")),
            Ok(vec!["http://a:1".to_string(), "https://b:2".to_string()])
        );
        assert_eq!(parse_origin_urls(Some("  "), Some("http://one:8080/")), Ok(vec!["http://one:8080".to_string()]));
        assert_eq!(parse_origin_urls(None, None), Err("neither ORIGIN_URLS nor ORIGIN_URL is set".to_string()));
        assert_eq!(
            parse_origin_urls(Some("http://a,,http://b"), None),
            Err("ORIGIN_URLS: \"\" is not an http(s) URL".into())
        );
        assert_eq!(
            parse_origin_urls(Some("ftp://a"), None),
            Err("ORIGIN_URLS: \"ftp://a\" is not an http(s) URL".into())
        );
        assert_eq!(
            parse_origin_urls(Some("http://a,http://a/"), None),
            Err("ORIGIN_URLS: http://a is listed twice".into())
        );
        assert_eq!(
            parse_origin_urls(None, Some("http://")),
            Err("ORIGIN_URL: \"http://\" is not an http(s) URL".into())
        );
    }

    #[test]
    fn every_origin_is_tried_once_and_a_user_always_starts_at_the_same_one() {
        let origins = urls(3);
        for user in 0..200 {
            let key = user.to_string();
            let order = preference(&key, &origins);
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(sorted, vec![0, 1, 2]);
            assert_eq!(preference(&key, &origins), order, "sticky");
        }
    }

    #[test]
    fn users_spread_evenly_over_origins() {
        let origins = urls(4);
        let mut first = [0u32; 4];
        for user in 0..40_000u64 {
            first[preference(&user.to_string(), &origins)[0]] += 1;
        }
        for count in first {
            assert!((9_000..=11_000).contains(&count), "uneven spread: {first:?}");
        }
    }

    #[test]
    fn removing_an_origin_moves_only_its_own_users_to_their_next_choice() {
        let all = urls(3);
        let without_last = all[..2].to_vec();
        let mut moved = 0;
        for user in 0..3_000u64 {
            let key = user.to_string();
            let before = preference(&key, &all);
            let after = preference(&key, &without_last);
            if before[0] == 2 {
                moved += 1;
                assert_eq!(after[0], before[1], "a user of the removed origin goes to its second choice");
            } else {
                assert_eq!(after[0], before[0], "other users stay where they were");
            }
        }
        assert!(moved > 700, "about a third of the users were on the removed origin: {moved}");
    }
}
