//! The first recurrent example: the LSTM's one-step-ahead error on the test part of the noisy
//! sine wave is far below that of repeating the last value, and near the noise floor.

#[path = "../examples/12_sine_lstm.rs"]
mod sine_lstm;

#[test]
fn the_lstm_predicts_the_next_value_of_a_noisy_sine() {
    let report = sine_lstm::train(60, 7);
    let (first, last) = (report.losses[0], *report.losses.last().unwrap());
    assert!(first > 30.0 * last, "the loss falls: {first} → {last}");
    // repeating the last value: the baseline any sequence model must beat
    let xs = sine_lstm::series(7);
    let test = &xs.as_slice().unwrap()[sine_lstm::LENGTH * 4 / 5..];
    let naive =
        test.windows(2).map(|w| ((w[1] - w[0]) as f64).powi(2)).sum::<f64>() / (test.len() - 1) as f64;
    let floor = sine_lstm::NOISE * sine_lstm::NOISE;
    println!("test mse {:.5}, repeating the last value {naive:.5}, noise floor {floor:.5}", report.test_mse);
    assert!(report.test_mse < naive / 2.0, "{} against {naive}", report.test_mse);
    assert!(report.test_mse < 2.0 * floor, "{} against the noise floor {floor}", report.test_mse);
    assert_eq!(report.truth.len(), report.predicted.len());
}
