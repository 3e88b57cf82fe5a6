#include "web/html.hpp"

#include <sstream>

#include "base/text.hpp"

namespace danemta::web {

std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        // Control characters from a server's greeting or a certificate are shown, not obeyed.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t')
          out += "&#xfffd;";
        else
          out += c;
    }
  }
  return out;
}

namespace {

std::string head(std::string_view title) {
  return "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
         "<title>" +
         escape(title) +
         "</title><link rel=\"stylesheet\" href=\"/style.css\"></head>\n<body><main>\n"
         "<h1><a href=\"/\">DANE and DNSSEC check</a></h1>\n";
}

std::string form(std::string_view domain, std::string_view port) {
  return "<form action=\"/check\" method=\"get\" id=\"form\">"
         "<label for=\"domain\">Domain that receives mail</label>"
         "<div class=\"row\"><input id=\"domain\" name=\"domain\" type=\"text\" required "
         "maxlength=\"253\" autocapitalize=\"none\" spellcheck=\"false\" "
         "placeholder=\"example.org\" value=\"" +
         escape(domain) +
         "\">"
         "<input id=\"port\" name=\"port\" type=\"text\" inputmode=\"numeric\" maxlength=\"5\" "
         "placeholder=\"port 25\" aria-label=\"port\" value=\"" +
         escape(port) + "\"><button type=\"submit\">Check</button></div></form>\n";
}

const char* kFoot =
    "<footer>The check looks up the domain's MX, address and TLSA records with DNSSEC "
    "validation and opens an SMTP session to each mail server up to STARTTLS and the "
    "certificate check, as a sending server using DANE (RFC 7672) would. No mail is sent. "
    "Same checks as <code>danemta check</code>.</footer>\n</main></body></html>\n";

std::string security_badge(dns::Security s) {
  const std::string_view name = dns::to_string(s);
  return "<span class=\"sec sec-" + std::string(name) + "\">" + std::string(name) + "</span>";
}

std::string outcome_html(dane::Outcome o, std::string_view cls) {
  const dane::OutcomeInfo& i = dane::info(o);
  std::string s = "<div class=\"" + std::string(cls) + "\"><span class=\"code\">" +
                  std::string(dane::code(o, false)) + "</span> <b>" + escape(i.name) + "</b>";
  if (!i.permanent_code.empty() && i.permanent_code != dane::code(o, false))
    s += " <small>(" + std::string(i.permanent_code) + " once retries end)</small>";
  s += "<p>" + escape(i.summary) + "</p>";
  if (!i.fix.empty()) s += "<p class=\"fix\"><b>Fix:</b> " + escape(i.fix) + "</p>";
  return s + "</div>";
}

std::string short_hex(const std::string& hex) {
  return hex.size() > 24 ? hex.substr(0, 24) + "&hellip;" : hex;
}

void probe_html(std::ostringstream& o, const check::AddressProbe& p) {
  o << "<div class=\"probe\"><h4>" << escape(p.address) << "</h4><dl>";
  if (!p.connected) {
    o << "<dt>reached</dt><dd class=\"bad\">no: " << escape(p.detail) << "</dd></dl>";
  } else {
    o << "<dt>greeting</dt><dd><code>" << escape(p.greeting) << "</code></dd>";
    o << "<dt>STARTTLS</dt><dd class=\""
      << (p.starttls_offered ? "good\">offered" : "bad\">NOT offered") << "</dd>";
    if (p.tls) {
      o << "<dt>TLS</dt><dd>" << escape(p.facts.protocol) << ", " << escape(p.facts.cipher)
        << "</dd><dt>SNI</dt><dd>" << escape(p.facts.sni) << "</dd>";
      o << "<dt>chain</dt><dd><ol start=\"0\" class=\"chain\">";
      for (std::size_t d = 0; d < p.facts.chain.size(); ++d) {
        const tls::CertSummary& c = p.facts.chain[d];
        o << "<li><span class=\"depth\">depth " << d << "</span> " << escape(c.subject)
          << "<br><small>issuer " << escape(c.issuer) << "; " << escape(c.key) << "; expires "
          << escape(c.not_after);
        if (!c.dns_names.empty()) {
          o << "; names";
          for (const std::string& n : c.dns_names) o << " " << escape(n);
        }
        o << "</small></li>";
      }
      o << "</ol></dd>";
      if (!p.matches.empty()) {
        o << "<dt>TLSA records</dt><dd><ul>";
        for (const check::RecordMatch& m : p.matches) {
          o << "<li><code>" << short_hex(escape(dns::to_string(m.record))) << "</code> ";
          if (m.depths.empty()) {
            o << "<span class=\"bad\">matches no certificate</span>";
          } else {
            o << "<span class=\"good\">matches depth";
            for (int d : m.depths) o << " " << d;
            o << "</span>";
          }
          o << "</li>";
        }
        o << "</ul></dd>";
      }
      if (p.matched)
        o << "<dt>DANE match</dt><dd class=\"good\"><code>"
          << short_hex(escape(dns::to_string(*p.matched))) << "</code> at depth " << p.matched_depth
          << "</dd>";
      if (p.names_ok)
        o << "<dt>names (DANE-TA)</dt><dd class=\""
          << (*p.names_ok ? "good\">match" : "bad\">no match") << "</dd>";
      o << "<dt>rollover</dt><dd>"
        << (p.rollover_ready
                ? "<span class=\"good\">ready</span> (another usable TLSA record is published)"
                : "not ready (one matching record only)")
        << "</dd>";
    }
    o << "<dt>authentication</dt><dd>" << dane::to_string(p.authentication) << "</dd>";
    if (!p.detail.empty()) o << "<dt>detail</dt><dd>" << escape(p.detail) << "</dd>";
    o << "</dl>";
  }
  if (p.failure) o << outcome_html(*p.failure, "outcome");
  for (const std::string& w : p.warnings) o << "<p class=\"warn\">" << escape(w) << "</p>";
  o << "</div>";
}

}  // namespace

std::string_view headline(check::Status s) {
  switch (s) {
    case check::Status::ok:
      return "OK";
    case check::Status::degraded:
      return "degraded";
    default:
      return "FAIL";
  }
}

std::string form_page(std::string_view message, std::string_view domain, std::string_view port) {
  std::string s = head("DANE and DNSSEC check");
  if (!message.empty())
    s += "<p class=\"error\" id=\"error\" role=\"alert\">" + escape(message) + "</p>\n";
  s += form(domain, port);
  s += "<p>Type the domain your mail is sent to (the part after the @). The check shows what "
       "a sending server that validates DNSSEC and uses DANE sees: the verdict, its status "
       "code and what to fix.</p>\n";
  return s + kFoot;
}

std::string check_page(const std::string& domain, std::uint16_t port, bool port_given) {
  const std::string p = std::to_string(port);
  std::string s = head(domain + ": DANE and DNSSEC check");
  s += form(domain, port_given ? p : "");
  const std::string query = "domain=" + escape(domain) + (port_given ? "&amp;port=" + p : "");
  s += "<section id=\"check\" data-domain=\"" + escape(domain) + "\" data-port=\"" +
       (port_given ? p : "") + "\"><h2>" + escape(domain) + (port_given ? " port " + p : "") +
       "</h2>\n<p id=\"state\" class=\"busy\" role=\"status\">Checking&hellip;</p>\n"
       "<noscript><p>The page shows the steps as they complete with JavaScript; without it, "
       "read <a href=\"/api/check?" +
       query +
       "\">the result as JSON</a>.</p></noscript>\n"
       "<details id=\"progress\" open><summary>Steps</summary><ol id=\"steps\"></ol></details>\n"
       "<div id=\"result\"></div></section>\n"
       "<script src=\"/app.js\" defer></script>\n";
  return s + kFoot;
}

std::string refusal_page(std::string_view title, std::string_view text) {
  std::string s = head(title);
  s += "<p class=\"error\" id=\"error\" role=\"alert\"><b>" + escape(title) +
       "</b>: " + escape(text) + "</p>\n" + form("", "");
  return s + kFoot;
}

std::string render_report(const check::Report& r, std::string_view json_link) {
  const dane::DestinationPlan& plan = r.plan;
  const check::Verdict& v = r.verdict;
  std::ostringstream o;
  const std::string_view status = headline(v.status);
  o << "<div id=\"verdict\" class=\"verdict v-" << check::to_string(v.status) << "\" data-status=\""
    << status << "\" data-code=\""
    << (v.outcome ? std::string(dane::code(*v.outcome, false)) : std::string()) << "\">";
  o << "<h3><span class=\"status\">" << status << "</span> " << escape(v.summary) << "</h3>";
  if (v.outcome) o << outcome_html(*v.outcome, "outcome");
  if (!v.reason.empty()) o << "<p class=\"reason\">" << escape(v.reason) << "</p>";
  for (const std::string& w : v.warnings) o << "<p class=\"warn\">" << escape(w) << "</p>";
  o << "</div>\n";

  o << "<h3>MX records " << security_badge(plan.mx_security) << "</h3>";
  if (!r.mx_why.empty()) o << "<p class=\"bad\">validator: " << escape(r.mx_why) << "</p>";
  if (plan.null_mx) o << "<p>Null MX (RFC 7505): the domain accepts no mail.</p>";
  if (plan.implicit_mx) o << "<p>No MX records: the domain itself is its mail host.</p>";
  if (!plan.mx_records.empty()) {
    o << "<ul>";
    for (const dns::MxRecord& m : plan.mx_records)
      o << "<li>" << m.preference << " " << escape(m.exchange.empty() ? "." : m.exchange)
        << "</li>";
    o << "</ul>";
  }

  for (std::size_t i = 0; i < plan.hosts.size(); ++i) {
    const dane::HostPlan& h = plan.hosts[i];
    const check::HostReport& hr = r.hosts[i];
    o << "<section class=\"host\"><h3>" << escape(h.name) << " <small>preference " << h.preference
      << "</small></h3><dl>";
    if (!h.expanded_name.empty())
      o << "<dt>alias of</dt><dd>" << escape(h.expanded_name) << "</dd>";
    o << "<dt>addresses " << security_badge(h.address_security) << "</dt><dd>";
    for (const std::string& a : h.addresses) o << escape(a) << " ";
    o << "</dd>";
    for (const check::TlsaLookup& l : hr.tlsa_lookups) {
      o << "<dt>TLSA " << escape(l.owner) << " " << security_badge(l.security) << "</dt><dd>"
        << escape(l.result);
      if (!l.why.empty()) o << "<br><span class=\"bad\">validator: " << escape(l.why) << "</span>";
      o << "</dd>";
    }
    o << "<dt>requirement</dt><dd>" << dane::to_string(h.requirement) << " ("
      << check::expected_authentication(h) << ")<br><small>" << escape(h.reason)
      << "</small></dd></dl>";
    if (!h.tlsa.empty()) {
      o << "<table class=\"tlsa\"><tr><th>TLSA record</th><th>usable</th><th>note</th></tr>";
      for (const dane::TlsaVerdict& t : h.tlsa)
        o << "<tr><td><code>" << int(t.record.usage) << " " << int(t.record.selector) << " "
          << int(t.record.mtype) << " " << short_hex(to_hex(t.record.data)) << "</code></td><td>"
          << (t.usable ? "yes" : "no") << "</td><td>" << escape(t.note) << "</td></tr>";
      o << "</table>";
    }
    if (h.failure) o << outcome_html(*h.failure, "outcome");
    for (const check::AddressProbe& p : hr.probes) probe_html(o, p);
    o << "</section>\n";
  }
  if (!plan.notes.empty()) {
    o << "<h3>Notes</h3><ul>";
    for (const std::string& n : plan.notes) o << "<li>" << escape(n) << "</li>";
    o << "</ul>";
  }
  o << "<p class=\"links\"><a id=\"json\" href=\"" << escape(json_link)
    << "\">This result as JSON</a> &middot; <a id=\"share\" href=\"\">Link to this check</a></p>\n";
  return o.str();
}

const std::string_view style_css = R"CSS(
:root { color-scheme: light dark; --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --line: #8884; }
body { font: 16px/1.45 system-ui, sans-serif; margin: 0; }
main { max-width: 52rem; margin: 0 auto; padding: 0.8rem; }
h1 { font-size: 1.3rem; } h1 a { color: inherit; text-decoration: none; }
h2 { font-size: 1.2rem; margin-top: 1.2rem; } h3 { font-size: 1.05rem; margin: 1rem 0 0.4rem; }
h4 { margin: 0.3rem 0; font-family: monospace; }
label { display: block; font-weight: 600; margin-bottom: 0.3rem; }
.row { display: flex; flex-wrap: wrap; gap: 0.4rem; }
#domain { flex: 1 1 12rem; min-width: 0; } #port { flex: 0 0 6.5rem; width: 6.5rem; }
input, button { font: inherit; padding: 0.45rem 0.6rem; border: 1px solid var(--line); border-radius: 6px; }
button { cursor: pointer; font-weight: 600; }
code { font-size: 0.9em; word-break: break-all; }
.error { border-left: 4px solid var(--bad); padding: 0.4rem 0.7rem; }
summary { cursor: pointer; font-size: 0.85rem; }
#steps { font-size: 0.85rem; color: GrayText; padding-left: 1.4rem; max-height: 14rem; overflow: auto; }
#state.busy::after { content: " \2026"; }
.verdict { border: 2px solid var(--line); border-radius: 8px; padding: 0.6rem 0.8rem; }
.verdict .status { font-weight: 700; padding: 0.05rem 0.5rem; border-radius: 4px; color: #fff; }
.v-ok { border-color: var(--ok); } .v-ok .status { background: var(--ok); }
.v-degraded { border-color: var(--warn); } .v-degraded .status { background: var(--warn); }
.v-deferred, .v-refused { border-color: var(--bad); }
.v-deferred .status, .v-refused .status { background: var(--bad); }
.code { font-family: monospace; font-weight: 700; }
.fix { margin: 0.3rem 0; } .warn { color: var(--warn); margin: 0.2rem 0; }
.good { color: var(--ok); } .bad { color: var(--bad); }
.sec { font-size: 0.8rem; padding: 0 0.4rem; border-radius: 4px; border: 1px solid currentColor; }
.sec-secure { color: var(--ok); } .sec-bogus { color: var(--bad); } .sec-insecure, .sec-indeterminate { color: var(--warn); }
.host { border-top: 1px solid var(--line); margin-top: 1rem; }
dl { display: grid; grid-template-columns: minmax(6rem, max-content) 1fr; gap: 0.15rem 0.8rem; margin: 0.3rem 0; }
dt { font-weight: 600; } dd { margin: 0; overflow-wrap: anywhere; }
.probe { border-left: 3px solid var(--line); padding-left: 0.7rem; margin: 0.6rem 0; }
.outcome { margin: 0.4rem 0; }
.chain { list-style: none; padding-left: 0; margin: 0; } .depth { font-family: monospace; }
table.tlsa { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
.tlsa td, .tlsa th { border: 1px solid var(--line); padding: 0.2rem 0.4rem; text-align: left; vertical-align: top; }
footer { margin-top: 2rem; font-size: 0.8rem; color: GrayText; }
@media (max-width: 30rem) { dl { grid-template-columns: 1fr; } dd { margin-left: 0.6rem; } }
)CSS";

// Opens /events for the domain on the page, lists each step as it comes,
// then puts the report in place. EventSource reconnects on its own after a
// closed stream: every ending closes it first.
const std::string_view app_js = R"JS('use strict';
(function () {
  var section = document.getElementById('check');
  if (!section || !window.EventSource) return;
  var steps = document.getElementById('steps');
  var state = document.getElementById('state');
  var result = document.getElementById('result');
  var q = 'domain=' + encodeURIComponent(section.dataset.domain);
  if (section.dataset.port) q += '&port=' + encodeURIComponent(section.dataset.port);
  var es = new EventSource('/events?' + q);
  function finish(text, cls) {
    es.close();
    state.textContent = text;
    state.className = cls;
  }
  es.addEventListener('step', function (e) {
    var li = document.createElement('li');
    li.textContent = e.data;
    steps.appendChild(li);
    steps.scrollTop = steps.scrollHeight;
  });
  es.addEventListener('result', function (e) {
    result.innerHTML = e.data;
    var share = document.getElementById('share');
    if (share) share.href = '/check?' + q;
    document.getElementById('progress').open = false;
    finish('Done: ' + steps.children.length + ' steps.', 'done');
  });
  es.addEventListener('refused', function (e) { finish(e.data, 'error'); });
  es.addEventListener('failed', function (e) { finish(e.data, 'error'); });
  es.onerror = function () {
    if (es.readyState !== EventSource.CLOSED) finish('The connection to the server was lost.', 'error');
  };
})();
)JS";

}  // namespace danemta::web
