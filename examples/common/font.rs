//! The examples' plots embed DejaVu Sans, so they need no system font library.

/// Registers the embedded font as plotters' `"sans-serif"`, once.
pub fn register_font() {
    static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("DejaVuSans.ttf is a valid font"))
    });
}
