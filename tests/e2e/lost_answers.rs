//! A buyer whose answer was lost (a timeout, a dropped connection, an edge that gave up) still
//! finds their order: a second buy's `ALREADY_BOUGHT` names it, and `GET /api/orders?productId=`
//! lists it, from the moment Redis accepted it, before MySQL holds it.

use std::time::Duration;

use seckill_e2e::{wait_until, TestApp};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

/// The order numbers and statuses of a listing.
fn listed(body: &Value) -> Vec<(String, String)> {
    body["orders"]
        .as_array()
        .unwrap_or_else(|| panic!("no orders array: {body}"))
        .iter()
        .map(|o| (o["orderNo"].as_str().unwrap().to_owned(), o["status"].as_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_buy_names_the_order_held_and_the_list_shows_it_in_every_state() {
    let app = TestApp::spawn().await;
    let product = app.create_product(5).await;
    let order_no = app.buy_queued(7, product).await;

    // At once (QUEUED or already written): the repeat names the order.
    let (status, again) = app.buy(7, product).await;
    assert_eq!((status, again["code"].as_str()), (409, Some("ALREADY_BOUGHT")), "{again}");
    assert_eq!(again["orderNo"].as_str(), Some(order_no.as_str()), "{again}");
    let (status, list) = app.orders_of(7, &format!("productId={product}")).await;
    assert_eq!(status, 200, "{list}");
    let orders = listed(&list);
    assert_eq!(orders.len(), 1, "{list}");
    assert_eq!(orders[0].0, order_no);
    assert!(["QUEUED", "UNPAID"].contains(&orders[0].1.as_str()), "{list}");

    app.wait_order_status(&order_no, "UNPAID", 30).await;
    let (_, again) = app.buy(7, product).await;
    assert_eq!(again["orderNo"].as_str(), Some(order_no.as_str()), "written to MySQL, still named: {again}");
    let (status, paid) = app.pay(&order_no, 7).await;
    assert_eq!(status, 200, "{paid}");
    let (_, list) = app.orders_of(7, &format!("productId={product}")).await;
    assert_eq!(listed(&list), vec![(order_no.clone(), "PAID".to_owned())]);

    // Nobody else's orders, and nothing of another product.
    let (_, theirs) = app.orders_of(8, &format!("productId={product}")).await;
    assert_eq!(listed(&theirs), vec![]);
    let other = app.create_product(1).await;
    let (_, none) = app.orders_of(7, &format!("productId={other}")).await;
    assert_eq!(listed(&none), vec![]);
    app.assert_invariants(product, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_order_list_refuses_what_it_does_not_take_and_names_it() {
    let app = TestApp::spawn().await;
    for (query, names) in [
        ("", "productId"),
        ("productId=0", "productId"),
        ("productId=x", "productId"),
        ("productId=1&status=PAID", "status"),
        ("productId=1&dry_run=true", "dry_run"),
    ] {
        let (status, body) = app.orders_of(1, query).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("BAD_REQUEST")), "{query}: {body}");
        assert!(body["message"].as_str().unwrap().contains(names), "{query}: {body}");
    }
}

/// Sends a buy and hangs up as soon as it is written: the buyer never reads the answer.
async fn buy_and_hang_up(app: &TestApp, user: u64, product: u64) {
    let address = app.server.url().trim_start_matches("http://").to_owned();
    let body = json!({ "userId": user, "productId": product }).to_string();
    let request = format!(
        "POST /api/seckill HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
         x-seckill-edge-secret: {secret}\r\nauthorization: Bearer {token}\r\ncontent-length: {len}\r\n\r\n{body}",
        secret = seckill_e2e::EDGE_SECRET,
        token = app.token_for(user),
        len = body.len(),
    );
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap();
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buyers_who_hang_up_find_exactly_one_order_each_and_can_pay_it() {
    let app = TestApp::spawn().await;
    let product = app.create_product(40).await;
    let users: Vec<u64> = (1..=30).collect();
    for &user in &users {
        buy_and_hang_up(&app, user, product).await;
    }
    // Whatever the origin did with the lost requests, each buyer now tries again and then looks.
    for &user in &users {
        let (status, answer) = app.buy(user, product).await;
        let named = match (status, answer["code"].as_str()) {
            (200, _) => answer["orderNo"].as_str().unwrap().to_owned(),
            (409, Some("ALREADY_BOUGHT")) => {
                answer["orderNo"].as_str().expect("ALREADY_BOUGHT names the order").to_owned()
            }
            _ => panic!("user {user}: {status} {answer}"),
        };
        let (_, list) = app.orders_of(user, &format!("productId={product}")).await;
        let orders = listed(&list);
        assert_eq!(orders.len(), 1, "user {user} holds exactly one order: {list}");
        assert_eq!(orders[0].0, named, "user {user}: the list and the answer agree");
    }
    for &user in &users {
        let (_, list) = app.orders_of(user, &format!("productId={product}")).await;
        let order_no = listed(&list)[0].0.clone();
        let placed = wait_until(Duration::from_secs(30), || async {
            app.order_as(&order_no, user).await.1["status"] == "UNPAID"
        })
        .await;
        assert!(placed, "order {order_no} of user {user} was not written");
        let (status, paid) = app.pay(&order_no, user).await;
        assert_eq!(status, 200, "user {user}: {paid}");
    }
    app.assert_invariants(product, 40).await;
}
