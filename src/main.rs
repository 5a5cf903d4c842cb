fn main() {
    for crd in tuskfish::api::crds() {
        println!("---\n{}", serde_json::to_string_pretty(&crd).unwrap_or_default());
    }
}
