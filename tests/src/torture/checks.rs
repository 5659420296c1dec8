//! The checks after the drain: each invariant of the run as a verdict with what it found.

use std::collections::HashSet;

use super::load::Tally;
use super::plan::Plan;
use super::stack::Stack;
use super::{Check, Orders};

/// The checks, after the drain.
pub(super) async fn check(
    stack: &Stack,
    plan: &Plan,
    tally: &Tally,
    drained: bool,
    copied: &HashSet<String>,
) -> anyhow::Result<(Orders, Vec<Check>)> {
    let db = &stack.db;
    let product = stack.product;
    let initial = i64::from(plan.units);
    let mut checks = Vec::new();
    let mut check = |name: &'static str, problems: Vec<String>, fine: String| {
        let ok = problems.is_empty();
        checks.push(Check { name, ok, detail: if ok { fine } else { problems.join("; ") } });
    };

    check(
        "the queue drained",
        if drained { vec![] } else { vec![format!("not within {} s", plan.drain_limit_secs)] },
        "outbox empty, every deduction written, no unpaid order left, the sale not frozen, writer/canceller/duplicator lag 0".into(),
    );

    let state = stack.product_state().await?;
    check(
        "stock conserved, no oversell, Redis and MySQL agree",
        state.violations(initial).await,
        "Redis stock + sold units = MySQL stock + sold units = initial; deduction log = active orders; buyers = their users; one user record per active order".into(),
    );

    let rows: Vec<(String, u64, String)> =
        sqlx::query_as("SELECT order_no, user_id, status FROM tb_seckill_order WHERE product_id = ?")
            .bind(product)
            .fetch_all(db)
            .await?;
    let by_no: std::collections::HashMap<&str, (u64, &str)> =
        rows.iter().map(|(no, user, status)| (no.as_str(), (*user, status.as_str()))).collect();
    let mut problems = Vec::new();
    let refused_rows: Vec<(String, u64, String)> =
        sqlx::query_as("SELECT order_no, user_id, reason FROM tb_rejected_order WHERE product_id = ?")
            .bind(product)
            .fetch_all(db)
            .await?;
    let refused: std::collections::HashMap<&str, u64> =
        refused_rows.iter().map(|(no, user, _)| (no.as_str(), *user)).collect();
    let missing: Vec<&str> = tally
        .queued
        .iter()
        .filter(|(no, _)| !by_no.contains_key(no.as_str()) && !refused.contains_key(no.as_str()))
        .map(|(no, _)| no.as_str())
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "{} answered 200 QUEUED without an order or a refusal, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        ));
    }
    let both = refused.keys().filter(|no| by_no.contains_key(*no)).count();
    if both > 0 {
        problems.push(format!("{both} orders both written and refused"));
    }
    // Each refusal is one its buyer can read.
    let mut unseen = 0;
    for (order_no, user) in refused.iter().take(200) {
        let resp = stack
            .http
            .get(format!("{}/api/orders/{order_no}", stack.origins[0].url))
            .header("x-seckill-edge-secret", crate::EDGE_SECRET)
            .bearer_auth(crate::Tokens::new(&stack.settings).for_user(*user))
            .send()
            .await?;
        let (status, body) = crate::read(resp).await;
        if status != 200 || body["status"] != "REFUSED" || !body["refusal"]["reason"].is_string() {
            unseen += 1;
        }
    }
    if unseen > 0 {
        problems.push(format!("{unseen} refused orders their buyer cannot see as REFUSED"));
    }
    let wrong_user = tally
        .queued
        .iter()
        .chain(&tally.pending)
        .filter(|(no, user)| by_no.get(no.as_str()).is_some_and(|(u, _)| u != user))
        .count();
    if wrong_user > 0 {
        problems.push(format!("{wrong_user} orders belong to another user than the one answered"));
    }
    let pending_written = tally.pending.iter().filter(|(no, _)| by_no.contains_key(no.as_str())).count();
    let queued_refused = tally.queued.iter().filter(|(no, _)| refused.contains_key(no.as_str())).count();
    check(
        "every 200 QUEUED became exactly one order or one refusal its buyer sees",
        problems,
        format!(
            "{} of {} QUEUED have their order and {queued_refused} a refusal shown as REFUSED (order numbers are unique); \
             {} of {} PENDING became orders",
            tally.queued.len() - queued_refused,
            tally.queued.len(),
            pending_written,
            tally.pending.len()
        ),
    );

    let answered: HashSet<&str> = tally.queued.iter().chain(&tally.pending).map(|(no, _)| no.as_str()).collect();
    let unheard = rows.iter().filter(|(no, _, _)| !answered.contains(no.as_str())).count() as u64;
    check(
        "no order that no buyer was told of, beyond the answers lost",
        if unheard <= tally.answer_lost {
            vec![]
        } else {
            vec![format!("{unheard} orders without a 200/202 answer, but only {} answers were lost", tally.answer_lost)]
        },
        format!("{unheard} orders whose answer was lost (of {} answers lost)", tally.answer_lost),
    );

    let (order_logs, cancel_logs, cancelled_without, cancel_of_active, units_out, units_back): (
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
    ) = sqlx::query_as(
        "SELECT \
           (SELECT COUNT(*) FROM tb_stock_log WHERE product_id = ? AND reason = 'ORDER'), \
           (SELECT COUNT(*) FROM tb_stock_log WHERE product_id = ? AND reason = 'CANCEL'), \
           (SELECT COUNT(*) FROM tb_seckill_order o WHERE o.product_id = ? AND o.status = 'CANCELLED' \
              AND NOT EXISTS (SELECT 1 FROM tb_stock_log l WHERE l.order_no = o.order_no AND l.reason = 'CANCEL')), \
           (SELECT COUNT(*) FROM tb_seckill_order o JOIN tb_stock_log l ON l.order_no = o.order_no \
              WHERE o.product_id = ? AND l.reason = 'CANCEL' AND o.status <> 'CANCELLED'), \
           (SELECT CAST(COALESCE(SUM(CAST(before_stock AS SIGNED) - CAST(after_stock AS SIGNED)), 0) AS SIGNED) \
              FROM tb_stock_log WHERE product_id = ? AND reason = 'ORDER'), \
           (SELECT CAST(COALESCE(SUM(CAST(after_stock AS SIGNED) - CAST(before_stock AS SIGNED)), 0) AS SIGNED) \
              FROM tb_stock_log WHERE product_id = ? AND reason = 'CANCEL')",
    )
    .bind(product)
    .bind(product)
    .bind(product)
    .bind(product)
    .bind(product)
    .bind(product)
    .fetch_one(db)
    .await?;
    let cancelled = rows.iter().filter(|(_, _, s)| s == "CANCELLED").count() as i64;
    let paid = rows.iter().filter(|(_, _, s)| s == "PAID").count() as i64;
    let mut problems = Vec::new();
    if order_logs != rows.len() as i64 {
        problems.push(format!("{order_logs} ORDER stock-log rows for {} orders", rows.len()));
    }
    if cancel_logs != cancelled || cancelled_without != 0 || cancel_of_active != 0 {
        problems.push(format!(
            "{cancel_logs} CANCEL stock-log rows for {cancelled} cancelled orders ({cancelled_without} cancelled without one, {cancel_of_active} for orders not cancelled)"
        ));
    }
    check(
        "each order taken once and cancelled at most once",
        problems,
        format!(
            "{order_logs} ORDER and {cancel_logs} CANCEL stock-log rows for {} orders, {cancelled} cancelled",
            rows.len()
        ),
    );

    let (mysql_stock,): (i64,) = sqlx::query_as("SELECT CAST(stock AS SIGNED) FROM tb_seckill_product WHERE id = ?")
        .bind(product)
        .fetch_one(db)
        .await?;
    check(
        "the stock log adds up to MySQL's stock",
        if initial - units_out + units_back == mysql_stock {
            vec![]
        } else {
            vec![format!("{initial} − {units_out} taken + {units_back} given back ≠ MySQL stock {mysql_stock}")]
        },
        format!("{initial} − {units_out} taken + {units_back} given back = {mysql_stock}"),
    );

    let refused: u64 = tally.malformed.iter().filter(|((_, l), _)| l.starts_with('4')).map(|(_, n)| n).sum();
    let not_answered: u64 =
        tally.malformed.iter().filter(|((_, l), _)| l == "answer lost" || l.starts_with("503")).map(|(_, n)| n).sum();
    check(
        "every answer is one the API documents (malformed: a JSON 4xx)",
        tally.wrong.clone(),
        format!(
            "{refused} of {} malformed requests refused with a JSON 4xx ({not_answered} met a restarting service); no 500",
            plan.malformed
        ),
    );

    let (_, letters) = stack.admin(reqwest::Method::GET, "/admin/dead-letters", None).await?;
    let dead = letters["deadLetters"].as_array().map_or(0, Vec::len);
    // Redis losing writes may sell a unit twice (STOCK_SHORTAGE) or let a forgotten buyer buy
    // again (DUPLICATE_ACTIVE_ORDER): refusals the faults explain. Any other is a defect.
    let unexplained: Vec<&(String, u64, String)> = refused_rows
        .iter()
        .filter(|(_, _, reason)| reason != "STOCK_SHORTAGE" && reason != "DUPLICATE_ACTIVE_ORDER")
        .collect();
    check(
        "no dead letters; refusals only of units or buyers a Redis loss duplicated",
        if dead == 0 && unexplained.is_empty() {
            vec![]
        } else {
            vec![format!("{dead} dead letters, refusals the faults do not explain: {unexplained:?}; {letters}")]
        },
        format!("0 dead letters, {} refused orders (STOCK_SHORTAGE or DUPLICATE_ACTIVE_ORDER)", refused_rows.len()),
    );

    let not_paid: Vec<&String> =
        tally.paid.iter().filter(|no| by_no.get(no.as_str()).map(|(_, s)| *s) != Some("PAID")).collect();
    check(
        "every payment answered PAID is a PAID order",
        if not_paid.is_empty() {
            vec![]
        } else {
            vec![format!("{} paid orders are not PAID: {:?}", not_paid.len(), not_paid)]
        },
        format!("{} payments, {} orders PAID", tally.paid.len(), paid),
    );

    let not_copied = rows.iter().filter(|(no, _, _)| !copied.contains(no)).count();
    check(
        "every order message was delivered twice, and written once",
        if not_copied == 0 {
            vec![]
        } else {
            vec![format!("{not_copied} orders whose message the duplicator never copied")]
        },
        format!("{} copies sent for {} orders; order numbers are unique in MySQL", copied.len(), rows.len()),
    );

    let paid_units: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(quantity), 0) AS SIGNED) FROM tb_seckill_order WHERE product_id = ? AND status = 'PAID'",
    )
    .bind(product)
    .fetch_one(db)
    .await?;
    let mut redis = state.redis.clone();
    let redis_stock: Option<i64> = redis::cmd("GET")
        .arg(seckill_origin::stock::product_key(&state.key_prefix, product, "stock"))
        .query_async(&mut redis)
        .await?;
    let orders = Orders {
        written: rows.len() as u64,
        paid: paid as u64,
        cancelled: cancelled as u64,
        paid_units: paid_units as u64,
        mysql_stock,
        redis_stock,
    };
    Ok((orders, checks))
}
