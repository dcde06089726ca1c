//! Italian and English: the message table of every published text, and numbers
//! formatted the way each language writes them (it: `1.234,5`; en: `1,234.5`).
//!
//! Texts are looked up by id in [`MESSAGES`]; a test checks every id has both
//! languages and no id is defined twice. Counts go through [`Lang::count`], which
//! applies the disclosure rule a last time: a count from 1 to 4 (or a count the query
//! already suppressed, which arrives as null) is printed `<5`, unless disclosure control
//! hid it as the partner of a small cell ([`Lang::count_in`]): that one is printed `c`,
//! because its true value may be large.

use crate::data::{Cell, Hidden, Table};

/// A language of the published outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// Italian (the default: the line's users and the municipality).
    #[default]
    It,
    /// English.
    En,
}

impl Lang {
    /// Parses `it` or `en` (case-insensitive).
    pub fn parse(s: &str) -> Option<Lang> {
        match s.to_ascii_lowercase().as_str() {
            "it" | "ita" | "italiano" => Some(Lang::It),
            "en" | "eng" | "english" => Some(Lang::En),
            _ => None,
        }
    }

    /// The BCP 47 tag for `<html lang>`.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::It => "it",
            Lang::En => "en",
        }
    }

    /// The text of message `id` (the id itself if unknown, so a missing text shows).
    pub fn t(self, id: &str) -> &'static str {
        match MESSAGES.iter().find(|m| m.0 == id) {
            Some((_, it, en)) => match self {
                Lang::It => it,
                Lang::En => en,
            },
            None => {
                tracing::warn!(id, "missing message");
                "?"
            }
        }
    }

    /// Message `id` with `{}` placeholders replaced in order by `args`.
    pub fn f(self, id: &str, args: &[&str]) -> String {
        let mut out = String::new();
        let mut rest = self.t(id);
        for a in args {
            match rest.find("{}") {
                Some(i) => {
                    out.push_str(&rest[..i]);
                    out.push_str(a);
                    rest = &rest[i + 2..];
                }
                None => break,
            }
        }
        out.push_str(rest);
        out
    }

    fn seps(self) -> (char, char) {
        match self {
            Lang::It => ('.', ','),
            Lang::En => (',', '.'),
        }
    }

    /// A number with `decimals` decimals and thousands separators.
    pub fn num(self, v: f64, decimals: usize) -> String {
        if !v.is_finite() {
            return "–".into();
        }
        let (thousands, point) = self.seps();
        let s = format!("{:.*}", decimals, v.abs());
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i.to_string(), Some(f.to_string())),
            None => (s.clone(), None),
        };
        let mut grouped = String::new();
        for (i, ch) in int.chars().enumerate() {
            if i > 0 && (int.len() - i) % 3 == 0 {
                grouped.push(thousands);
            }
            grouped.push(ch);
        }
        let negative = v < 0.0 && s.chars().any(|c| c.is_ascii_digit() && c != '0');
        let mut out = String::new();
        if negative {
            out.push('−');
        }
        out.push_str(&grouped);
        if let Some(f) = frac {
            out.push(point);
            out.push_str(&f);
        }
        out
    }

    /// A whole number with thousands separators.
    pub fn int(self, v: f64) -> String {
        self.num(v, 0)
    }

    /// A share in [0, 1] as a percentage with one decimal (`85,0%` / `85.0%`).
    pub fn pct(self, share: f64) -> String {
        format!("{}%", self.num(share * 100.0, 1))
    }

    /// A signed change in percentage points (`+1,5 p.p.` / `+1.5 pp`).
    pub fn pp(self, diff: f64) -> String {
        let sign = if diff > 0.0 { "+" } else { "" };
        format!("{sign}{} {}", self.num(diff * 100.0, 1), self.t("unit.pp"))
    }

    /// A count under disclosure control: null (suppressed) or 1..`min_count`-1 → `<min_count`.
    pub fn count(self, c: &Cell, min_count: u32) -> String {
        match c.as_f64() {
            Some(v) if v > 0.0 && v < f64::from(min_count) => format!("<{min_count}"),
            Some(v) => self.int(v),
            None if c.is_null() => format!("<{min_count}"),
            None => c.as_text(),
        }
    }

    /// The count in column `name` of `row` of a query result: as [`Lang::count`], but a
    /// count hidden by secondary suppression is written `c` (not `<5`: it may be large).
    pub fn count_in(self, t: &Table, row: &[Cell], name: &str, min_count: u32) -> String {
        match t.hidden(row, name) {
            Some(Hidden::Partner) => culla_queries::disclosure::SECONDARY_SYMBOL.to_string(),
            _ => self.count(t.get(row, name), min_count),
        }
    }

    /// A share cell, or `–` when missing or suppressed.
    pub fn pct_cell(self, c: &Cell) -> String {
        c.as_f64()
            .map(|v| self.pct(v))
            .unwrap_or_else(|| "–".into())
    }

    /// A decimal cell, or `–` when missing or suppressed.
    pub fn num_cell(self, c: &Cell, decimals: usize) -> String {
        c.as_f64()
            .map(|v| self.num(v, decimals))
            .unwrap_or_else(|| "–".into())
    }

    /// Month label (`gen`…`dic` / `Jan`…`Dec`) of month 1–12.
    pub fn month(self, m: u32) -> &'static str {
        const IT: [&str; 12] = [
            "gen", "feb", "mar", "apr", "mag", "giu", "lug", "ago", "set", "ott", "nov", "dic",
        ];
        const EN: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let i = (m.clamp(1, 12) - 1) as usize;
        match self {
            Lang::It => IT[i],
            Lang::En => EN[i],
        }
    }

    /// Weekday label of ISO weekday 1 (Monday)–7 (Sunday).
    pub fn weekday(self, d: u32) -> &'static str {
        const IT: [&str; 7] = ["lun", "mar", "mer", "gio", "ven", "sab", "dom"];
        const EN: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        let i = (d.clamp(1, 7) - 1) as usize;
        match self {
            Lang::It => IT[i],
            Lang::En => EN[i],
        }
    }

    /// A date written out (`5 marzo 2024` / `5 March 2024`).
    pub fn date(self, d: chrono::NaiveDate) -> String {
        use chrono::Datelike;
        const IT: [&str; 12] = [
            "gennaio",
            "febbraio",
            "marzo",
            "aprile",
            "maggio",
            "giugno",
            "luglio",
            "agosto",
            "settembre",
            "ottobre",
            "novembre",
            "dicembre",
        ];
        const EN: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        let m = d.month0() as usize;
        match self {
            Lang::It => format!("{} {} {}", d.day(), IT[m], d.year()),
            Lang::En => format!("{} {} {}", d.day(), EN[m], d.year()),
        }
    }
}

/// Every published text: `(id, Italian, English)`.
pub const MESSAGES: &[(&str, &str, &str)] = &[
    // Units and shared words.
    ("unit.pp", "p.p.", "pp"),
    ("unit.h", "ore", "hours"),
    ("unit.s", "secondi", "seconds"),
    ("word.target", "obiettivo", "target"),
    ("word.total", "Totale", "Total"),
    ("word.suppressed", "dato oscurato (<5)", "suppressed (<5)"),
    ("word.secondary", "dato riservato (c)", "withheld (c)"),
    ("word.figure", "Figura", "Figure"),
    ("word.nodata", "nessun dato", "no data"),
    ("word.unknown", "non noto", "unknown"),
    ("word.yes", "sì", "yes"),
    ("word.no", "no", "no"),
    (
        "word.show_data",
        "Mostra i dati del grafico",
        "Show the chart's data",
    ),
    ("word.source_all", "tutte le linee", "all lines"),
    // Document.
    ("doc.title", "Rapporto annuale {}", "Annual report {}"),
    (
        "doc.subtitle",
        "Linee di supporto alle famiglie con bambini da 0 a 3 anni: contatti, bisogni e rischio di isolamento",
        "Support lines for families with children aged 0 to 3: contacts, needs and risk of isolation",
    ),
    ("doc.lines", "Linee incluse: {}", "Lines included: {}"),
    (
        "doc.generated",
        "Dati aggiornati al {}. Documento generato con culla.",
        "Data as of {}. Produced with culla.",
    ),
    ("doc.toc", "Indice", "Contents"),
    ("doc.skip", "Vai al contenuto", "Skip to content"),
    // Symbols used in tables (and the methods section's list of them).
    (
        "legend.small",
        "<{}: meno di {} (dato oscurato).",
        "<{}: fewer than {} (suppressed).",
    ),
    (
        "legend.partner",
        "c: dato riservato, il cui valore può essere anche grande: è nascosto perché dai totali non si possa ricavare una cella con meno di {}.",
        "c: withheld; its value may be large: it is hidden so that a cell under {} cannot be worked out from totals.",
    ),
    (
        "legend.dash",
        "–: non calcolabile, o calcolato su un dato nascosto.",
        "–: not computable, or computed from a hidden value.",
    ),
    (
        "legend.partial",
        "*: il totale esclude celle nascoste (<5 o c), quindi il valore vero è più alto.",
        "*: the total leaves out hidden cells (<5 or c), so the true value is higher.",
    ),
    ("s8.symbols", "Segni convenzionali", "Symbols"),
    // Key figures.
    ("kpi.heading", "Il {} in sintesi", "{} at a glance"),
    (
        "kpi.contacts",
        "contatti (telefonate e chat)",
        "contacts (calls and chats)",
    ),
    (
        "kpi.families",
        "famiglie in contatto",
        "families in contact",
    ),
    (
        "kpi.service_level",
        "chiamate con risposta entro 30 secondi (obiettivo 85%)",
        "calls answered within 30 seconds (target 85%)",
    ),
    (
        "kpi.escalation",
        "contatti inviati al secondo livello",
        "contacts referred to the second level",
    ),
    (
        "kpi.callback",
        "richiamate entro 72 ore (obiettivo 95%)",
        "callbacks within 72 hours (target 95%)",
    ),
    (
        "kpi.unmet",
        "bisogni rimasti senza risposta",
        "needs left unmet",
    ),
    ("kpi.met", "obiettivo raggiunto", "target met"),
    ("kpi.below", "sotto l'obiettivo", "below target"),
    // Section 1.
    (
        "s1.heading",
        "Contatti e livelli di servizio",
        "Contacts and service levels",
    ),
    (
        "s1.intro",
        "Un contatto è una telefonata ricevuta o una chat aperta. Il livello di servizio è la quota di chiamate ricevute a cui un operatore ha risposto entro 30 secondi; l'obiettivo pubblicato dal contact center 02.02.02 è l'85%.",
        "A contact is one call received or one chat opened. The service level is the share of calls received that an operator answered within 30 seconds; the target published by the 02.02.02 contact centre is 85%.",
    ),
    (
        "s1.fig_volume",
        "Contatti per mese e canale",
        "Contacts by month and channel",
    ),
    (
        "s1.fig_volume_desc",
        "Grafico a barre dei contatti di ogni mese del {}, per canale. Totale dell'anno: {} contatti; mese con più contatti: {}.",
        "Bar chart of the contacts of each month of {}, by channel. Year total: {} contacts; busiest month: {}.",
    ),
    (
        "s1.fig_sl",
        "Livello di servizio e tasso di risposta per mese",
        "Service level and answer rate by month",
    ),
    (
        "s1.fig_sl_desc",
        "Grafico a linee del livello di servizio (risposta entro 30 secondi) e del tasso di risposta per mese, con la linea dell'obiettivo all'85%. Livello di servizio dell'anno: {}; mesi sopra l'obiettivo: {} su {}.",
        "Line chart of the service level (answered within 30 seconds) and the answer rate by month, with the 85% target line. Service level for the year: {}; months at or above target: {} of {}.",
    ),
    ("s1.target_label", "obiettivo 85%", "target 85%"),
    // Section 2.
    (
        "s2.heading",
        "Quando chiamano le famiglie",
        "When families get in touch",
    ),
    (
        "s2.intro",
        "Contatti per giorno della settimana e ora (ora di Roma). L'orario di servizio è lunedì–sabato 08:00–18:00; i contatti fuori orario sono contati a parte.",
        "Contacts by day of the week and hour (Rome time). Service hours are Monday–Saturday 08:00–18:00; contacts outside them are counted as out of hours.",
    ),
    (
        "s2.fig",
        "Contatti per giorno e ora",
        "Contacts by weekday and hour",
    ),
    (
        "s2.fig_desc",
        "Mappa di calore di 7 giorni per 24 ore: più scuro il colore, più contatti. Fascia più intensa: {} ore {}, {} contatti. Le celle nascoste per riservatezza sono tratteggiate: a righe se hanno meno di 5 contatti (<5), a quadretti se sono riservate (c).",
        "Heatmap of 7 days by 24 hours: the darker the colour, the more contacts. Busiest slot: {} at {}:00, {} contacts. Cells hidden for confidentiality are hatched: striped when they hold fewer than 5 contacts (<5), checked when withheld (c).",
    ),
    (
        "s2.out_of_hours",
        "Contatti fuori orario nell'anno: {} ({}).",
        "Contacts out of hours in the year: {} ({}).",
    ),
    // Section 3.
    (
        "s3.heading",
        "Invii al secondo livello e richiamate",
        "Referrals and callbacks",
    ),
    (
        "s3.intro",
        "Un contatto è inviato al secondo livello quando l'operatore crea una segnalazione (servizio sociale del Municipio o servizio partner). Il tempo di richiamata va dalla segnalazione alla prima richiamata in cui la famiglia è raggiunta; l'obiettivo è richiamare il 95% delle famiglie entro 72 ore.",
        "A contact is referred to the second level when the operator creates a referral (the Municipio's social service or a partner service). Time to callback runs from the referral to the first callback that reaches the family; the target is to reach 95% of families within 72 hours.",
    ),
    (
        "s3.fig",
        "Richiamate entro 72 ore e tasso di invio per mese",
        "Callbacks within 72 hours and escalation rate by month",
    ),
    (
        "s3.fig_desc",
        "Grafico a linee della quota di segnalazioni richiamate entro 72 ore, con l'obiettivo al 95%, e del tasso di invio al secondo livello. Quota dell'anno entro 72 ore: {}; tempo mediano di richiamata: {} ore.",
        "Line chart of the share of referrals reached within 72 hours, with the 95% target, and of the escalation rate. Year share within 72 hours: {}; median time to callback: {} hours.",
    ),
    ("s3.target_label", "obiettivo 95%", "target 95%"),
    // Section 4.
    (
        "s4.heading",
        "Bisogni e bisogni senza risposta",
        "Needs and unmet needs",
    ),
    (
        "s4.intro",
        "Ogni bisogno espresso da una famiglia è registrato con una categoria e l'esito del primo livello. Un bisogno resta senza risposta se la risorsa manca, c'è lista d'attesa, la famiglia non ha i requisiti, la segnalazione si chiude senza servizio, la famiglia non viene richiamata entro l'obiettivo o salta l'appuntamento senza riprenotarlo.",
        "Each need a family expresses is recorded with a category and the first-level outcome. A need is unmet when no resource exists, there is a waiting list, the family is not eligible, the referral closes without a service, the family is not called back within the target, or it misses an appointment and books no other.",
    ),
    (
        "s4.fig",
        "Bisogni e bisogni senza risposta per categoria",
        "Needs and unmet needs by category",
    ),
    (
        "s4.fig_desc",
        "Grafico a barre orizzontali dei bisogni registrati e di quelli senza risposta per categoria. Categoria più frequente: {} ({} bisogni); bisogni senza risposta nell'anno: {} su {}.",
        "Horizontal bar chart of needs recorded and needs unmet by category. Most frequent category: {} ({} needs); unmet needs in the year: {} of {}.",
    ),
    (
        "s4.reasons",
        "Motivi dei bisogni senza risposta",
        "Why needs were left unmet",
    ),
    // Section 5.
    (
        "s5.heading",
        "Rischio di isolamento per quartiere",
        "Risk of isolation by neighbourhood",
    ),
    (
        "s5.intro",
        "Una famiglia è ad alto rischio di isolamento quando ha almeno {} dei fattori elencati sotto. Il tasso è calcolato ogni 1.000 nati vivi del quartiere (NIL) nell'anno {} (open data del Comune di Milano, ds205), con intervallo di confidenza esatto di Poisson al 95%.",
        "A family is at high risk of isolation when it has at least {} of the factors listed below. The rate is per 1,000 live births in the neighbourhood (NIL) in {} (Comune di Milano open data, ds205), with an exact 95% Poisson confidence interval.",
    ),
    (
        "s5.fig",
        "Famiglie ad alto rischio di isolamento ogni 1.000 nati, per NIL",
        "High-risk families per 1,000 births, by NIL",
    ),
    (
        "s5.fig_desc",
        "Mappa dei 88 Nuclei d'Identità Locale di Milano colorati per famiglie ad alto rischio di isolamento ogni 1.000 nati vivi. NIL con il tasso più alto: {} ({}). {} NIL hanno dati nascosti per riservatezza e sono tratteggiati: a righe se meno di 5 famiglie (<5), a quadretti se riservati (c).",
        "Map of Milan's 88 Nuclei d'Identità Locale coloured by high-risk families per 1,000 live births. Highest rate: {} ({}). {} NIL have data hidden for confidentiality and are hatched: striped when fewer than 5 families (<5), checked when withheld (c).",
    ),
    ("s5.legend", "ogni 1.000 nati", "per 1,000 births"),
    (
        "s5.flags",
        "Fattori di rischio delle famiglie in contatto",
        "Risk factors of the families in contact",
    ),
    (
        "s5.municipi",
        "Municipi: rischio di isolamento e bisogni senza risposta",
        "Municipi: isolation risk and unmet needs",
    ),
    ("s5.nil_table", "Tutti i NIL", "All NIL"),
    // Section 6.
    (
        "s6.heading",
        "Confronto con l'anno precedente",
        "Change from the previous year",
    ),
    (
        "s6.intro",
        "Gli stessi indicatori nel {} e nel {}.",
        "The same measures in {} and {}.",
    ),
    ("s6.change", "Variazione", "Change"),
    // Section 7.
    (
        "s7.heading",
        "Confronto con l'indagine sulle famiglie",
        "Comparison with the family survey",
    ),
    (
        "s7.intro",
        "Per ogni categoria di bisogno: la quota di famiglie dell'indagine che lo dichiarano ({} famiglie) e la quota di famiglie in contatto con la linea che lo hanno espresso nel {} ({} famiglie), con intervalli di Wilson al 95%. Il valore p è del test esatto di Fisher, o del chi quadrato di Pearson senza correzione quando tutte le frequenze attese sono almeno 5; le differenze sono significative se q < 0,05 dopo la correzione di Benjamini–Hochberg.",
        "For each need category: the share of surveyed families who report it ({} families) and the share of families in contact with the line who expressed it in {} ({} families), with 95% Wilson intervals. The p-value is Fisher's exact test, or Pearson's chi-square without correction when every expected count is at least 5; differences are significant when q < 0.05 after the Benjamini–Hochberg adjustment.",
    ),
    (
        "s7.fig",
        "Quota di famiglie con il bisogno: indagine e contatti",
        "Share of families with the need: survey and contacts",
    ),
    (
        "s7.fig_desc",
        "Grafico a barre orizzontali della quota di famiglie che dichiarano ciascun bisogno nell'indagine e tra le famiglie in contatto. Differenze significative: {}.",
        "Horizontal bar chart of the share of families reporting each need in the survey and among families in contact. Significant differences: {}.",
    ),
    ("s7.none", "nessuna", "none"),
    // Section 8.
    (
        "s8.heading",
        "Metodo, definizioni e fonti",
        "Methods, definitions and sources",
    ),
    (
        "s8.events",
        "I dati sono gli eventi registrati dalle linee (telefonate, chat, bisogni, segnalazioni, richiamate, appuntamenti), identificati solo da una chiave pseudonima della famiglia: nessun numero di telefono, nome o testo dei messaggi entra nel sistema. I periodi usano l'ora di Roma; un contatto appartiene al mese in cui è iniziato, un bisogno al mese in cui è registrato, una segnalazione al mese in cui è creata. Eventi arrivati in ritardo correggono i periodi passati.",
        "The data are the events the lines record (calls, chats, needs, referrals, callbacks, appointments), identified only by a pseudonymous family key: no phone number, name or message text enters the system. Periods use Rome time; a contact belongs to the month it started, a need to the month it was recorded, a referral to the month it was created. Late events correct past periods.",
    ),
    ("s8.defs", "Definizioni", "Definitions"),
    (
        "def.contact",
        "Contatto: una telefonata ricevuta o una chat aperta.",
        "Contact: one call received or one chat opened.",
    ),
    (
        "def.answer",
        "Tasso di risposta: chiamate con risposta / chiamate ricevute; abbandono: chiamate abbandonate / ricevute; attesa: mediana e 90° percentile dei secondi di attesa delle chiamate con risposta (percentili esatti con interpolazione lineare).",
        "Answer rate: calls answered / calls received; abandonment: calls abandoned / received; wait: median and 90th percentile of the wait in seconds of answered calls (exact percentiles with linear interpolation).",
    ),
    (
        "def.service_level",
        "Livello di servizio: chiamate con risposta entro 30 secondi / chiamate ricevute (obiettivo 85%).",
        "Service level: calls answered within 30 seconds / calls received (target 85%).",
    ),
    (
        "def.hours",
        "Orario di servizio: lunedì–sabato 08:00–18:00, ora di Roma; i contatti fuori orario sono contati come tali.",
        "Service hours: Monday–Saturday 08:00–18:00 Rome time; contacts outside are counted as out of hours.",
    ),
    (
        "def.escalation",
        "Tasso di invio: contatti con almeno una segnalazione / contatti. Risoluzione al primo livello: contatti senza segnalazione / contatti (obiettivo 98%).",
        "Escalation rate: contacts with at least one referral / contacts. First-level resolution: contacts with no referral / contacts (target 98%).",
    ),
    (
        "def.callback",
        "Tempo di richiamata: dalla segnalazione alla prima richiamata in cui la famiglia è raggiunta; mediana e 90° percentile sulle segnalazioni raggiunte. Quota entro l'obiettivo: segnalazioni raggiunte entro 72 ore / tutte le segnalazioni del periodo (obiettivo 95%).",
        "Time to callback: from the referral to the first callback that reaches the family; median and 90th percentile over referrals reached. Share within target: referrals reached within 72 hours / all referrals of the period (target 95%).",
    ),
    (
        "def.unmet",
        "Bisogno senza risposta: esito di primo livello «nessuna risorsa», «lista d'attesa» o «requisiti mancanti»; oppure segnalazione chiusa per servizio non disponibile, lista d'attesa, requisiti mancanti o famiglia irraggiungibile; oppure nessuna richiamata riuscita entro l'obiettivo; oppure appuntamento mancato senza nuova prenotazione. I rifiuti della famiglia sono riportati a parte.",
        "Unmet need: a first-level outcome of no resource, waiting list or not eligible; or a referral closed as service unavailable, waiting list, not eligible or unreachable; or no successful callback within the target; or a missed appointment with no later booking. Needs the family declined are reported apart.",
    ),
    (
        "def.risk",
        "Fattori di rischio di isolamento (dall'ultimo profilo della famiglia e dalla sua storia): genitore solo, nessuna rete familiare, barriera linguistica, arrivo negli ultimi 2 anni, primo figlio, nessun pediatra, bisogno psicologico, bisogno economico, contatti ripetuti (3 o più in 30 giorni). Alto rischio: almeno 3 fattori.",
        "Isolation risk factors (from the family's latest profile and its history): single parent, no family network, language barrier, arrived in the last 2 years, first child, no pediatrician, psychological need, economic need, repeat contacts (3 or more within 30 days). High risk: 3 or more factors.",
    ),
    (
        "def.rates",
        "Tassi per quartiere: ogni 1.000 nati vivi nell'anno nel NIL (se l'anno manca nei dati di riferimento si usa l'ultimo disponibile, indicato), con intervallo esatto di Poisson al 95%. Le famiglie senza NIL sono riportate come «non noto».",
        "Neighbourhood rates: per 1,000 live births of the year in the NIL (if the year is missing from the reference data the latest available is used, and named), with an exact 95% Poisson interval. Families without a NIL are reported as unknown.",
    ),
    (
        "s8.disclosure",
        "Tutela della riservatezza",
        "Disclosure control",
    ),
    (
        "s8.disclosure_text",
        "Nessuna tabella, grafico o mappa mostra un conteggio da 1 a 4: questi valori sono oscurati e scritti «<5». Quando un totale permetterebbe di ricavarli, è nascosta anche una seconda cella, scritta «c»: il suo valore può essere grande. Sono nascosti anche i tassi calcolati su un dato nascosto («–»). Lo zero non è oscurato. Le quote dell'indagine su meno di 5 famiglie sono oscurate allo stesso modo.",
        "No table, chart or map shows a count from 1 to 4: such values are suppressed and written “<5”. When a total would reveal one, a second cell is hidden too and written “c”: its value may be large. Rates computed from a hidden value are hidden as well (“–”). Zero is never suppressed. Survey shares built on fewer than 5 families are suppressed the same way.",
    ),
    (
        "s8.sources",
        "Fonti e attribuzione",
        "Sources and attribution",
    ),
    (
        "s8.sources_text",
        "Eventi delle linee di supporto (elaborazione culla). Confini dei NIL, nati vivi e residenti per NIL: Comune di Milano, open data (dataset ds205 e strato dei NIL), licenza CC-BY 4.0.",
        "Support-line events (processed with culla). NIL boundaries, live births and residents per NIL: Comune di Milano open data (dataset ds205 and the NIL layer), licence CC-BY 4.0.",
    ),
    (
        "s8.software",
        "Software: culla, licenza EUPL-1.2.",
        "Software: culla, licence EUPL-1.2.",
    ),
    // Column headings.
    ("col.month", "Mese", "Month"),
    ("col.source", "Linea", "Line"),
    ("col.channel", "Canale", "Channel"),
    ("col.contacts", "Contatti", "Contacts"),
    ("col.families", "Famiglie", "Families"),
    ("col.out_of_hours", "Fuori orario", "Out of hours"),
    ("col.calls", "Chiamate", "Calls"),
    ("col.answered", "Con risposta", "Answered"),
    ("col.abandoned", "Abbandonate", "Abandoned"),
    ("col.answer_rate", "Tasso di risposta", "Answer rate"),
    (
        "col.abandonment_rate",
        "Tasso di abbandono",
        "Abandonment rate",
    ),
    ("col.wait_p50", "Attesa mediana (s)", "Median wait (s)"),
    ("col.wait_p90", "Attesa 90° perc. (s)", "Wait p90 (s)"),
    ("col.service_level", "Livello di servizio", "Service level"),
    ("col.escalated", "Inviati", "Referred"),
    ("col.escalation_rate", "Tasso di invio", "Escalation rate"),
    ("col.referrals", "Segnalazioni", "Referrals"),
    (
        "col.callback_p50",
        "Richiamata mediana (ore)",
        "Median callback (h)",
    ),
    (
        "col.callback_p90",
        "Richiamata 90° perc. (ore)",
        "Callback p90 (h)",
    ),
    (
        "col.callback_within",
        "Richiamate entro 72 ore",
        "Reached within 72 h",
    ),
    (
        "col.callback_within_target_share",
        "Richiamate entro 72 ore",
        "Reached within 72 h",
    ),
    (
        "col.unmet_per_1000_births",
        "Senza risposta ogni 1.000 nati",
        "Unmet per 1,000 births",
    ),
    (
        "col.high_risk_per_1000_births",
        "Alto rischio ogni 1.000 nati",
        "High risk per 1,000 births",
    ),
    ("col.nil_name", "NIL", "NIL"),
    ("col.weekday", "Giorno", "Day"),
    ("col.hour", "Ora", "Hour"),
    ("col.category", "Categoria", "Category"),
    ("col.needs", "Bisogni", "Needs"),
    ("col.unmet", "Senza risposta", "Unmet"),
    ("col.unmet_share", "Quota senza risposta", "Share unmet"),
    ("col.reason", "Motivo", "Reason"),
    ("col.nil", "NIL", "NIL"),
    ("col.municipio", "Municipio", "Municipio"),
    ("col.high_risk", "Alto rischio", "High risk"),
    ("col.rate_births", "Ogni 1.000 nati", "Per 1,000 births"),
    ("col.ci", "IC 95%", "95% CI"),
    ("col.flag", "Fattore", "Factor"),
    ("col.share", "Quota", "Share"),
    ("col.measure", "Indicatore", "Measure"),
    ("col.survey_share", "Indagine", "Survey"),
    (
        "col.contact_share",
        "Famiglie in contatto",
        "Families in contact",
    ),
    ("col.difference", "Differenza", "Difference"),
    ("col.test", "Test", "Test"),
    ("col.p", "p", "p"),
    ("col.q", "q (BH)", "q (BH)"),
    ("col.significant", "Significativa", "Significant"),
    ("col.value", "Valore", "Value"),
    ("series.contacts", "Contatti", "Contacts"),
    ("series.needs", "Bisogni", "Needs"),
    ("series.unmet", "Senza risposta", "Unmet"),
    ("series.survey", "Indagine", "Survey"),
    (
        "series.contact",
        "Famiglie in contatto",
        "Families in contact",
    ),
    ("test.fisher", "Fisher esatto", "Fisher exact"),
    ("test.chi2", "Chi quadrato", "Chi-square"),
    // Categories, reasons, flags, channels.
    ("cat.economic", "Economico", "Economic"),
    ("cat.health", "Salute", "Health"),
    ("cat.education", "Educazione", "Education"),
    ("cat.childcare", "Cura dei bambini (nidi)", "Childcare"),
    ("cat.socialisation", "Socialità", "Socialisation"),
    ("cat.documents", "Documenti", "Documents"),
    ("cat.housing", "Casa", "Housing"),
    ("cat.work", "Lavoro", "Work"),
    ("cat.psychological", "Psicologico", "Psychological"),
    ("cat.violence", "Violenza", "Violence"),
    ("cat.other", "Altro", "Other"),
    ("reason.no_resource", "Nessuna risorsa", "No resource"),
    ("reason.waiting_list", "Lista d'attesa", "Waiting list"),
    ("reason.not_eligible", "Requisiti mancanti", "Not eligible"),
    (
        "reason.service_unavailable",
        "Servizio non disponibile",
        "Service unavailable",
    ),
    (
        "reason.unreachable",
        "Famiglia irraggiungibile",
        "Family unreachable",
    ),
    (
        "reason.no_callback",
        "Nessuna richiamata entro l'obiettivo",
        "No callback within target",
    ),
    (
        "reason.missed_appointment",
        "Appuntamento mancato",
        "Missed appointment",
    ),
    (
        "reason.declined",
        "Rifiutato dalla famiglia",
        "Declined by the family",
    ),
    ("flag.single_parent", "Genitore solo", "Single parent"),
    (
        "flag.no_family_network",
        "Nessuna rete familiare",
        "No family network",
    ),
    (
        "flag.language_barrier",
        "Barriera linguistica",
        "Language barrier",
    ),
    (
        "flag.arrived_last_2y",
        "Arrivo negli ultimi 2 anni",
        "Arrived in the last 2 years",
    ),
    ("flag.first_child", "Primo figlio", "First child"),
    ("flag.no_pediatrician", "Nessun pediatra", "No pediatrician"),
    (
        "flag.psychological_need",
        "Bisogno psicologico",
        "Psychological need",
    ),
    ("flag.economic_need", "Bisogno economico", "Economic need"),
    (
        "flag.repeat_contacts",
        "Contatti ripetuti",
        "Repeat contacts",
    ),
    (
        "flag.high_risk",
        "Alto rischio (3 o più fattori)",
        "High risk (3 or more factors)",
    ),
    ("channel.phone", "Telefono", "Phone"),
    ("comune.015146", "Milano", "Milan"),
    ("comune.015142", "Melzo", "Melzo"),
    ("col.comune", "Comune", "Municipality"),
    ("channel.whatsapp", "WhatsApp", "WhatsApp"),
    ("channel.webchat", "Chat web", "Web chat"),
    // Year-on-year measures.
    ("yoy.contacts", "Contatti", "Contacts"),
    (
        "yoy.families",
        "Famiglie in contatto",
        "Families in contact",
    ),
    ("yoy.service_level", "Livello di servizio", "Service level"),
    ("yoy.escalation", "Tasso di invio", "Escalation rate"),
    (
        "yoy.callback",
        "Richiamate entro 72 ore",
        "Callbacks within 72 hours",
    ),
    ("yoy.needs", "Bisogni registrati", "Needs recorded"),
    ("yoy.unmet", "Bisogni senza risposta", "Unmet needs"),
    // Dashboard page.
    ("dash.title", "Cruscotto in tempo reale", "Live dashboard"),
    ("dash.year", "Anno", "Year"),
    ("dash.source", "Linea", "Line"),
    ("dash.municipio", "Municipio", "Municipio"),
    ("dash.all", "Tutti", "All"),
    ("dash.updated", "Aggiornato", "Updated"),
    ("dash.desc_bar", "Grafico a barre.", "Bar chart."),
    ("dash.desc_line", "Grafico a linee.", "Line chart."),
    (
        "dash.desc_heat",
        "Mappa di calore: più scuro il colore, più alto il valore.",
        "Heatmap: the darker the colour, the higher the value.",
    ),
    (
        "dash.desc_map",
        "Mappa dei NIL di Milano colorati per valore; NIL con dati:",
        "Map of Milan's NIL coloured by value; NIL with data:",
    ),
    ("dash.desc_max", "Valore più alto:", "Highest value:"),
    (
        "dash.hidden",
        "NIL con dati nascosti",
        "NIL with hidden data",
    ),
    (
        "dash.no_municipio",
        "Il filtro per Municipio non si applica a questo pannello.",
        "The Municipio filter does not apply to this panel.",
    ),
    ("dash.other", "Altri cruscotti", "Other dashboards"),
    ("dash.filters", "Filtri", "Filters"),
    (
        "dash.live",
        "Si aggiorna da solo ogni 5 secondi quando arrivano nuovi dati.",
        "Updates itself every 5 seconds when new data arrives.",
    ),
    (
        "dash.static",
        "Aggiornamento automatico spento: ricaricare la pagina per i nuovi dati.",
        "Automatic updates are off: reload the page for new data.",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_message_has_both_languages_and_one_definition() {
        let mut seen = BTreeSet::new();
        for (id, it, en) in MESSAGES {
            assert!(seen.insert(*id), "message {id} defined twice");
            assert!(!it.trim().is_empty(), "message {id} has no Italian text");
            assert!(!en.trim().is_empty(), "message {id} has no English text");
            // Placeholders must agree, or one language would drop a number.
            assert_eq!(
                it.matches("{}").count(),
                en.matches("{}").count(),
                "placeholders of {id} differ"
            );
        }
    }

    #[test]
    fn numbers_per_language() {
        assert_eq!(Lang::It.num(1234.5, 1), "1.234,5");
        assert_eq!(Lang::En.num(1234.5, 1), "1,234.5");
        assert_eq!(Lang::It.int(15000.0), "15.000");
        assert_eq!(Lang::En.int(1234567.0), "1,234,567");
        assert_eq!(Lang::En.int(999.0), "999");
        assert_eq!(Lang::It.pct(0.85), "85,0%");
        assert_eq!(Lang::En.pp(-0.015), "−1.5 pp");
        assert_eq!(Lang::It.num(-0.04, 1), "0,0");
    }

    #[test]
    fn counts_under_five_never_print() {
        for v in 1..5 {
            assert_eq!(Lang::It.count(&Cell::Int(v), 5), "<5");
        }
        assert_eq!(Lang::It.count(&Cell::Null, 5), "<5");
        assert_eq!(Lang::It.count(&Cell::Int(0), 5), "0");
        assert_eq!(Lang::En.count(&Cell::Int(5), 5), "5");
        assert_eq!(Lang::En.count(&Cell::Int(1200), 5), "1,200");
    }

    #[test]
    fn a_partner_of_a_small_cell_prints_c_not_under_five() {
        let t = Table {
            columns: ["channel", "contacts", "suppressed", "suppressed_secondary"]
                .iter()
                .map(|c| c.to_string())
                .collect(),
            rows: vec![
                vec![
                    Cell::Text("phone".into()),
                    Cell::Null,
                    Cell::Text("contacts".into()),
                    Cell::Null,
                ],
                vec![
                    Cell::Text("whatsapp".into()),
                    Cell::Null,
                    Cell::Text("contacts,out_of_hours_share".into()),
                    Cell::Text("contacts".into()),
                ],
                vec![
                    Cell::Text("webchat".into()),
                    Cell::Int(1234),
                    Cell::Null,
                    Cell::Null,
                ],
            ],
        };
        let c = |r: usize, lang: Lang| lang.count_in(&t, &t.rows[r], "contacts", 5);
        assert_eq!(c(0, Lang::It), "<5");
        assert_eq!(c(1, Lang::It), "c");
        assert_eq!(c(1, Lang::En), "c");
        assert_eq!(c(2, Lang::It), "1.234");
        assert_eq!(t.hidden(&t.rows[1], "contacts"), Some(Hidden::Partner));
        assert_eq!(t.hidden(&t.rows[0], "contacts"), Some(Hidden::Small));
        assert_eq!(t.hidden(&t.rows[2], "contacts"), None);
        // A column merely named like a listed one's prefix is not hidden.
        assert_eq!(t.hidden(&t.rows[1], "out_of_hours"), None);
    }
}
