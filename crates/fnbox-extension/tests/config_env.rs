//! `ExtensionConfig::from_env` (own test binary: it changes the process environment).

use fnbox_extension::{Extension, ExtensionConfig, ExtensionError};

#[tokio::test]
async fn missing_and_present_extension_api_addr() {
    std::env::remove_var("EXTENSION_API_ADDR");
    let err = ExtensionConfig::from_env().unwrap_err();
    assert!(matches!(
        err,
        ExtensionError::MissingEnv {
            var: "EXTENSION_API_ADDR"
        }
    ));
    assert!(err.to_string().contains("EXTENSION_API_ADDR"));
    // run() without an explicit config reads the same variable first.
    let err = Extension::builder("extensionA.sh").run().await.unwrap_err();
    assert!(matches!(err, ExtensionError::MissingEnv { .. }), "{err:?}");

    std::env::set_var("EXTENSION_API_ADDR", "127.0.0.1:31999");
    assert_eq!(
        ExtensionConfig::from_env().unwrap().api_addr,
        "127.0.0.1:31999"
    );
    std::env::set_var("EXTENSION_API_ADDR", "http://127.0.0.1:31999/");
    assert!(matches!(
        ExtensionConfig::from_env(),
        Err(ExtensionError::InvalidApiAddr { .. })
    ));
}
