//! Each example's printed figures, pinned.

#[path = "../examples/01_apple_shopping.rs"]
mod apple_shopping;

#[test]
fn apple_shopping_prints_the_textbook_figures() {
    let report = apple_shopping::report();
    let numbers: Vec<&str> = report.lines().take_while(|l| !l.starts_with("digraph")).collect();
    // apples: price = 100·2·1.1; d/dapple = 2·1.1, d/dnum = 100·1.1, d/dtax = 100·2
    // with oranges: price = (100·2 + 150·3)·1.1 = 715; d/dorange = 3·1.1, d/dorange_num = 150·1.1,
    // d/dtax = 650
    let expected = [
        "price: 220",
        "dApple: 2.2",
        "dApple_num: 110",
        "dTax: 200",
        "",
        "price: 715",
        "dApple: 2.2",
        "dApple_num: 110",
        "dOrange: 3.3",
        "dOrange_num: 165",
        "dTax: 650",
        "",
    ];
    assert_eq!(numbers, expected);
    let dot = &report[report.find("digraph").unwrap()..];
    assert!(dot.contains("[label=\"orange_num\\n3\\ngrad 165\""), "{dot}");
    assert!(dot.contains("[label=\"price\\n715\""), "{dot}");
    assert_eq!(dot.matches("shape=box").count(), 4); // two products, a sum, the tax
    assert!(dot.trim_end().ends_with('}'));
}
