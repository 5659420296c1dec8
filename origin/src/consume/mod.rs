//! The consume process's own parts, over the domain: the handlers of the order writer, the
//! canceller and the dead-letter keeper ([`handlers`]), and the gauges it keeps for
//! Prometheus: each group's lag ([`lag`]) and each live sale's stock in both stores
//! ([`stock_gauges`]).

pub mod handlers;
pub mod lag;
pub mod stock_gauges;
