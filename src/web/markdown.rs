//! Job summaries on the build page: the step's Markdown rendered to HTML
//! (CommonMark with GitHub's tables, strikethrough and task lists, as a
//! check run shows it) and then sanitized, so nothing a step wrote runs in
//! a viewer's browser: raw HTML is reduced to a safe set of tags (no
//! `<script>`, `<style>`, `<iframe>`, no `on*` attributes), and links and
//! images keep only `http`, `https` and `mailto` URLs (no `javascript:`).

use pulldown_cmark::{Options, Parser, html};

/// The step's Markdown as safe HTML.
pub fn render(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let mut unsafe_html = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut unsafe_html, Parser::new_ext(markdown, options));
    ammonia::Builder::default()
        .url_schemes(["http", "https", "mailto"].into())
        .url_relative(ammonia::UrlRelative::Deny)
        .clean(&unsafe_html)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_renders_and_nothing_runs() {
        let html = render(
            "## Results\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n<script>alert(1)</script>\n<img src=x onerror=alert(1)>\n\n[x](javascript:alert(1))\n",
        );
        assert!(html.contains("<h2>Results</h2>"), "{html}");
        assert!(html.contains("<td>1</td>"), "{html}");
        for bad in ["<script", "onerror", "javascript:"] {
            assert!(!html.contains(bad), "{bad} survived: {html}");
        }
    }
}
