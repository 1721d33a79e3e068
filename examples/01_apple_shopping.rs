//! The apple-shopping computational graph: buy apples (and oranges), add tax, and let backward
//! tell how much the price moves per unit change of each input.
//!
//! Run with `cargo run --release --example 01_apple_shopping`; pipe the DOT text after the
//! numbers into `dot -Tpng` to see the graph.

use tapegrad::{DotOptions, Tape, Var};

/// Rounds away the last bits of floating-point noise (`110.00000000000001` prints as `110`).
fn show(x: f64) -> String {
    format!("{}", (x * 1e9).round() / 1e9)
}

/// Runs both cases and returns the printed report.
pub fn report() -> String {
    let mut out = String::new();

    // price = apple · apple_num · tax
    let tape = Tape::<f64>::new();
    let apple = tape.var(100.0).named("apple");
    let apple_num = tape.var(2.0).named("apple_num");
    let tax = tape.var(1.1).named("tax");
    let price = (apple * apple_num * tax).named("price");
    let grads = price.backward();
    let d = |v: Var<f64>| show(grads[v].scalar().expect("a scalar"));
    out += &format!("price: {}\n", show(price.scalar()));
    out += &format!("dApple: {}\n", d(apple));
    out += &format!("dApple_num: {}\n", d(apple_num));
    out += &format!("dTax: {}\n\n", d(tax));

    // price = (apple · apple_num + orange · orange_num) · tax
    let tape = Tape::<f64>::new();
    let apple = tape.var(100.0).named("apple");
    let apple_num = tape.var(2.0).named("apple_num");
    let orange = tape.var(150.0).named("orange");
    let orange_num = tape.var(3.0).named("orange_num");
    let tax = tape.var(1.1).named("tax");
    let all_price = (apple * apple_num + orange * orange_num).named("all_price");
    let price = (all_price * tax).named("price");
    let grads = price.backward();
    let d = |v: Var<f64>| show(grads[v].scalar().expect("a scalar"));
    out += &format!("price: {}\n", show(price.scalar()));
    out += &format!("dApple: {}\n", d(apple));
    out += &format!("dApple_num: {}\n", d(apple_num));
    out += &format!("dOrange: {}\n", d(orange));
    out += &format!("dOrange_num: {}\n", d(orange_num));
    out += &format!("dTax: {}\n\n", d(tax));
    out += &tape.to_dot(price, DotOptions { values: true, grads: Some(&grads) });
    out
}

#[allow(dead_code)]
fn main() {
    print!("{}", report());
}
