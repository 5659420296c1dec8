//! Every code an error answer of the shop's API can carry, with its HTTP status and who may
//! see it: one definition for the origin, which answers them, and the edge, which answers some
//! itself and reads the origin's. An error body is always `{"code": "...", "message": "..."}`.
//!
//! A new code is one line in [`error_codes!`]'s list below; the compiler then asks every
//! `match` on [`ErrorCode`] to say what it means there.

/// Who an error code is for: the shop page explains every code a buyer can meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Buyers and operators alike (a malformed request, a service down).
    Everyone,
    /// Buyers, on the shop's routes.
    Buyers,
    /// Operators, on the admin routes.
    Operators,
}

/// Declares [`ErrorCode`]: each line is `Variant = "CODE", HTTP status, audience`.
macro_rules! error_codes {
    ($( $(#[doc = $doc:literal])* $variant:ident = $code:literal, $status:literal, $audience:ident; )*) => {
        /// A code of an error answer (see the module's doc).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code, in the order declared.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The body's `code`, e.g. `SOLD_OUT`.
            pub const fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code),* }
            }

            /// The HTTP status every answer with this code has.
            pub const fn status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status),* }
            }

            /// Who may meet this code.
            pub const fn audience(self) -> Audience {
                match self { $(ErrorCode::$variant => Audience::$audience),* }
            }
        }
    };
}

error_codes! {
    /// The request breaks a rule (a field missing, malformed or out of bounds); nothing changed.
    BadRequest = "BAD_REQUEST", 400, Everyone;
    /// Each field is within the document's bounds, but together they break a rule the document
    /// cannot state (`endAt` after `startAt`, `maxActiveUsers` at least `newUsersPerInterval`,
    /// `price` × `perUserLimit` within an order's amount); nothing changed.
    InvalidCombination = "INVALID_COMBINATION", 422, Operators;
    /// `quantity` is over the sale's per-user limit; nothing was bought.
    OverLimit = "OVER_LIMIT", 422, Buyers;
    /// No valid identity token.
    Unauthenticated = "UNAUTHENTICATED", 401, Buyers;
    /// A missing or wrong admin token.
    Unauthorized = "UNAUTHORIZED", 401, Operators;
    /// Not through the edge, or a body naming a user other than the signed-in one.
    Forbidden = "FORBIDDEN", 403, Buyers;
    /// No such route.
    NotFound = "NOT_FOUND", 404, Everyone;
    /// No such product on sale.
    NoSuchProduct = "NO_SUCH_PRODUCT", 404, Everyone;
    /// No such order of the signed-in user.
    NoSuchOrder = "NO_SUCH_ORDER", 404, Buyers;
    /// No such dead letter.
    NoSuchDeadLetter = "NO_SUCH_DEAD_LETTER", 404, Operators;
    /// The path exists, the method does not.
    MethodNotAllowed = "METHOD_NOT_ALLOWED", 405, Everyone;
    /// Sold out, or fewer units left than asked for.
    SoldOut = "SOLD_OUT", 409, Buyers;
    /// The user already holds an order of this product.
    AlreadyBought = "ALREADY_BOUGHT", 409, Buyers;
    /// The sale has not started.
    NotStarted = "NOT_STARTED", 409, Buyers;
    /// The sale has ended.
    Ended = "ENDED", 409, Buyers;
    /// The order is accepted and not written yet: it cannot be paid until it is UNPAID.
    OrderPending = "ORDER_PENDING", 409, Buyers;
    /// The order was cancelled (not paid in time).
    OrderCancelled = "ORDER_CANCELLED", 409, Buyers;
    /// The order was refused and cannot be paid; nothing is owed.
    OrderRefused = "ORDER_REFUSED", 409, Buyers;
    /// The order's time to pay ran out; its cancel is due.
    OrderExpired = "ORDER_EXPIRED", 409, Buyers;
    /// A preload refused while the loaded sale's window is open.
    SaleLive = "SALE_LIVE", 409, Operators;
    /// A preload refused: Redis does not hold what MySQL recorded for a loaded sale.
    RedisStateLost = "REDIS_STATE_LOST", 409, Operators;
    /// Redis and MySQL disagree in a way no operation repairs on its own.
    Inconsistent = "INCONSISTENT", 409, Operators;
    /// Another preload or reconcile of the sale is running.
    SaleBusy = "SALE_BUSY", 409, Operators;
    /// A reconcile refused: the order queue did not drain in time.
    OrdersInQueue = "ORDERS_IN_QUEUE", 409, Operators;
    /// The body is over the route's limit.
    PayloadTooLarge = "PAYLOAD_TOO_LARGE", 413, Everyone;
    /// The body's content type is not one the route reads.
    UnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE", 415, Everyone;
    /// The operator revoked this user's place in the sale's waiting room: nothing was bought.
    PassRevoked = "PASS_REVOKED", 403, Buyers;
    /// The sale's room asks a solved challenge of a user joining its line, and this request's
    /// was missing, wrong, expired or used before (the message says which).
    ChallengeFailed = "CHALLENGE_FAILED", 403, Buyers;
    /// Over a rate limit; `Retry-After` says when to try again.
    RateLimited = "RATE_LIMITED", 429, Buyers;
    /// In the sale's waiting room: not admitted yet; `Retry-After` says when to ask again.
    Queued = "QUEUED", 429, Buyers;
    /// In the sale's pre-queue: the order is drawn at the start; `Retry-After` says when to ask again.
    PreQueue = "PRE_QUEUE", 429, Buyers;
    /// A fault of the server; nothing is known to have changed.
    Internal = "INTERNAL", 500, Everyone;
    /// A service is down, or the stock service failed a moment ago: nothing was done.
    Unavailable = "UNAVAILABLE", 503, Everyone;
    /// Too many buys waiting; nothing was taken.
    Busy = "BUSY", 503, Buyers;
    /// The sale is paused while its Redis state is healed; nothing was taken.
    SaleFrozen = "SALE_FROZEN", 503, Buyers;
    /// The origin did not answer in time (the edge's wait, or the origin's own request
    /// deadline): the outcome is unknown.
    OriginTimeout = "ORIGIN_TIMEOUT", 504, Buyers;
}

/// How many answers the edge decided itself, by sale and code, since its last such report
/// (`POST /api/edge/refusals`, with the edge secret): the origin adds them up for the console
/// and Prometheus. Each edge instance reports its own.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EdgeRefusals {
    #[cfg_attr(feature = "openapi", schema(max_items = 1000))]
    pub counts: Vec<RefusalCount>,
}

/// Answers of one code, for one sale (`productId`) or for none (a route without one).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefusalCount {
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub product_id: Option<u64>,
    /// One of [`ErrorCode`]'s codes.
    #[cfg_attr(feature = "openapi", schema(schema_with = code_schema))]
    pub code: String,
    /// At most [`MAX_REFUSAL_COUNT`]: more than any instance answers between two reports.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1_000_000_000))]
    pub count: u64,
}

/// The largest count one report may carry for one sale and code.
pub const MAX_REFUSAL_COUNT: u64 = 1_000_000_000;

/// The document's schema of a `code`: every [`ErrorCode`], so a client can match them all.
#[cfg(feature = "openapi")]
pub fn code_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(ErrorCode::ALL.iter().map(|code| code.as_str())))
        .examples([serde_json::json!("SOLD_OUT")])
        .build()
}

impl EdgeRefusals {
    /// Checks every count; the error names what is wrong.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.counts.len() > MAX_REFUSAL_COUNTS {
            return Err(Invalid::Field(format!("counts: at most {MAX_REFUSAL_COUNTS}")));
        }
        for c in &self.counts {
            if ErrorCode::parse(&c.code).is_none() {
                return Err(Invalid::Field(format!("counts: {:?} is not an error code", c.code)));
            }
            if c.count == 0 || c.product_id == Some(0) {
                return Err(Invalid::Field("counts: count and productId must be at least 1".into()));
            }
            if c.count > MAX_REFUSAL_COUNT {
                return Err(Invalid::Field(format!("counts: count must be at most {MAX_REFUSAL_COUNT}")));
            }
        }
        Ok(())
    }
}

/// The most counts one report may carry.
pub const MAX_REFUSAL_COUNTS: usize = 1000;

/// Why input is refused: one field out of its bounds (400 `BAD_REQUEST`), or fields each
/// within bounds that together break a rule (422 `INVALID_COMBINATION`). The message names the
/// field or fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    Field(String),
    Combination(String),
}

impl Invalid {
    /// The answer's code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Invalid::Field(_) => ErrorCode::BadRequest,
            Invalid::Combination(_) => ErrorCode::InvalidCombination,
        }
    }

    /// The same refusal with its field names prefixed (`waitingRoom.`), for a nested object.
    pub fn within(self, prefix: &str) -> Self {
        match self {
            Invalid::Field(m) => Invalid::Field(format!("{prefix}{m}")),
            Invalid::Combination(m) => Invalid::Combination(format!("{prefix}{m}")),
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Invalid::Field(m) | Invalid::Combination(m) => f.write_str(m),
        }
    }
}

impl ErrorCode {
    /// The code `text` names, if any.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|code| code.as_str() == text)
    }

    /// The code of an answer with `status` that came without one (the framework's own 405,
    /// 413, ...); `None` for a status no code has.
    pub fn for_status(status: u16) -> Option<Self> {
        match status {
            400 => Some(Self::BadRequest),
            401 => Some(Self::Unauthenticated),
            403 => Some(Self::Forbidden),
            404 => Some(Self::NotFound),
            405 => Some(Self::MethodNotAllowed),
            413 => Some(Self::PayloadTooLarge),
            415 => Some(Self::UnsupportedMediaType),
            429 => Some(Self::RateLimited),
            500 => Some(Self::Internal),
            503 => Some(Self::Unavailable),
            504 => Some(Self::OriginTimeout),
            _ => None,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `SOLD_OUT`'s message, worded once for the origin and the edge's cached answer.
pub fn sold_out_message(product_id: u64) -> String {
    format!("product {product_id} is sold out")
}

/// `NOT_STARTED`'s message, worded once for the origin and the edge (a room not open yet).
pub fn not_started_message(product_id: u64, start_ms: u64) -> String {
    format!("the sale of product {product_id} starts at {start_ms} (ms)")
}

/// `ALREADY_BOUGHT`'s message, worded once for the origin and the edge's cached answer.
pub fn already_bought_message(user_id: u64, product_id: u64) -> String {
    format!("user {user_id} already holds an order of product {product_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_screaming_snake_case_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for &code in ErrorCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} declared twice");
            assert!(text.chars().all(|c| c.is_ascii_uppercase() || c == '_'), "{text}");
            assert_eq!(ErrorCode::parse(text), Some(code));
            assert!((400..600).contains(&code.status()), "{text}: {}", code.status());
        }
        assert_eq!(ErrorCode::parse("sold_out"), None);
    }

    #[test]
    fn a_status_maps_to_a_code_of_that_status() {
        for status in 400..600 {
            if let Some(code) = ErrorCode::for_status(status) {
                assert_eq!(code.status(), status, "{code}");
            }
        }
    }
}
