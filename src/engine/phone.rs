//! Phone numbers to E.164 (`+15551234567`), for the `e164` template filter.
//!
//! Call-center data carries numbers as agents and web forms typed them: `(555) 123-4567`,
//! `07700 900123`, `0044 7700 900123`. Normalising needs only the country calling code and
//! the national trunk prefix, not a full numbering-plan database; numbers that cannot be
//! made into 8–15 digits give None rather than a guess.

/// ISO 3166 alpha-2 country → international calling code.
const CALLING_CODES: &[(&str, &str)] = &[
    ("US", "1"),
    ("CA", "1"),
    ("PR", "1"),
    ("VI", "1"),
    ("GU", "1"),
    ("AS", "1"),
    ("MP", "1"),
    ("BS", "1"),
    ("BB", "1"),
    ("AG", "1"),
    ("AI", "1"),
    ("BM", "1"),
    ("DM", "1"),
    ("DO", "1"),
    ("GD", "1"),
    ("JM", "1"),
    ("KN", "1"),
    ("KY", "1"),
    ("LC", "1"),
    ("MS", "1"),
    ("SX", "1"),
    ("TC", "1"),
    ("TT", "1"),
    ("VC", "1"),
    ("VG", "1"),
    ("RU", "7"),
    ("KZ", "7"),
    ("EG", "20"),
    ("ZA", "27"),
    ("GR", "30"),
    ("NL", "31"),
    ("BE", "32"),
    ("FR", "33"),
    ("ES", "34"),
    ("HU", "36"),
    ("IT", "39"),
    ("VA", "39"),
    ("RO", "40"),
    ("CH", "41"),
    ("AT", "43"),
    ("GB", "44"),
    ("UK", "44"),
    ("GG", "44"),
    ("IM", "44"),
    ("JE", "44"),
    ("DK", "45"),
    ("SE", "46"),
    ("NO", "47"),
    ("PL", "48"),
    ("DE", "49"),
    ("PE", "51"),
    ("MX", "52"),
    ("CU", "53"),
    ("AR", "54"),
    ("BR", "55"),
    ("CL", "56"),
    ("CO", "57"),
    ("VE", "58"),
    ("MY", "60"),
    ("AU", "61"),
    ("ID", "62"),
    ("PH", "63"),
    ("NZ", "64"),
    ("SG", "65"),
    ("TH", "66"),
    ("JP", "81"),
    ("KR", "82"),
    ("VN", "84"),
    ("CN", "86"),
    ("TR", "90"),
    ("IN", "91"),
    ("PK", "92"),
    ("AF", "93"),
    ("LK", "94"),
    ("MM", "95"),
    ("IR", "98"),
    ("SS", "211"),
    ("MA", "212"),
    ("DZ", "213"),
    ("TN", "216"),
    ("LY", "218"),
    ("GM", "220"),
    ("SN", "221"),
    ("MR", "222"),
    ("ML", "223"),
    ("GN", "224"),
    ("CI", "225"),
    ("BF", "226"),
    ("NE", "227"),
    ("TG", "228"),
    ("BJ", "229"),
    ("MU", "230"),
    ("LR", "231"),
    ("SL", "232"),
    ("GH", "233"),
    ("NG", "234"),
    ("TD", "235"),
    ("CF", "236"),
    ("CM", "237"),
    ("CV", "238"),
    ("ST", "239"),
    ("GQ", "240"),
    ("GA", "241"),
    ("CG", "242"),
    ("CD", "243"),
    ("AO", "244"),
    ("GW", "245"),
    ("SC", "248"),
    ("SD", "249"),
    ("RW", "250"),
    ("ET", "251"),
    ("SO", "252"),
    ("DJ", "253"),
    ("KE", "254"),
    ("TZ", "255"),
    ("UG", "256"),
    ("BI", "257"),
    ("MZ", "258"),
    ("ZM", "260"),
    ("MG", "261"),
    ("RE", "262"),
    ("ZW", "263"),
    ("NA", "264"),
    ("MW", "265"),
    ("LS", "266"),
    ("BW", "267"),
    ("SZ", "268"),
    ("KM", "269"),
    ("ER", "291"),
    ("AW", "297"),
    ("FO", "298"),
    ("GL", "299"),
    ("GI", "350"),
    ("PT", "351"),
    ("LU", "352"),
    ("IE", "353"),
    ("IS", "354"),
    ("AL", "355"),
    ("MT", "356"),
    ("CY", "357"),
    ("FI", "358"),
    ("BG", "359"),
    ("LT", "370"),
    ("LV", "371"),
    ("EE", "372"),
    ("MD", "373"),
    ("AM", "374"),
    ("BY", "375"),
    ("AD", "376"),
    ("MC", "377"),
    ("SM", "378"),
    ("UA", "380"),
    ("RS", "381"),
    ("ME", "382"),
    ("XK", "383"),
    ("HR", "385"),
    ("SI", "386"),
    ("BA", "387"),
    ("MK", "389"),
    ("CZ", "420"),
    ("SK", "421"),
    ("LI", "423"),
    ("FK", "500"),
    ("BZ", "501"),
    ("GT", "502"),
    ("SV", "503"),
    ("HN", "504"),
    ("NI", "505"),
    ("CR", "506"),
    ("PA", "507"),
    ("HT", "509"),
    ("GP", "590"),
    ("BO", "591"),
    ("GY", "592"),
    ("EC", "593"),
    ("PY", "595"),
    ("MQ", "596"),
    ("SR", "597"),
    ("UY", "598"),
    ("CW", "599"),
    ("TL", "670"),
    ("BN", "673"),
    ("PG", "675"),
    ("TO", "676"),
    ("SB", "677"),
    ("VU", "678"),
    ("FJ", "679"),
    ("WS", "685"),
    ("PF", "689"),
    ("HK", "852"),
    ("MO", "853"),
    ("KH", "855"),
    ("LA", "856"),
    ("BD", "880"),
    ("TW", "886"),
    ("MV", "960"),
    ("LB", "961"),
    ("JO", "962"),
    ("SY", "963"),
    ("IQ", "964"),
    ("KW", "965"),
    ("SA", "966"),
    ("YE", "967"),
    ("OM", "968"),
    ("PS", "970"),
    ("AE", "971"),
    ("IL", "972"),
    ("BH", "973"),
    ("QA", "974"),
    ("BT", "975"),
    ("MN", "976"),
    ("NP", "977"),
    ("TJ", "992"),
    ("TM", "993"),
    ("AZ", "994"),
    ("GE", "995"),
    ("KG", "996"),
    ("UZ", "998"),
];

/// Countries whose national numbers keep their leading 0 in international form.
const KEEPS_LEADING_ZERO: &[&str] = &["IT", "VA", "SM"];

/// The calling code of an ISO 3166 alpha-2 country (case-insensitive).
pub fn calling_code(country: &str) -> Option<&'static str> {
    CALLING_CODES
        .iter()
        .find(|(iso, _)| iso.eq_ignore_ascii_case(country))
        .map(|(_, code)| *code)
}

/// `number` in E.164 form, reading national numbers as numbers of `country`.
pub fn e164(number: &str, country: &str) -> Option<String> {
    let trimmed = number.trim();
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    let international = if trimmed.starts_with('+') {
        digits
    } else if let Some(rest) = digits.strip_prefix("00") {
        rest.to_string()
    } else {
        let code = calling_code(country)?;
        national_to_international(&digits, code, country)?
    };
    (8..=15)
        .contains(&international.len())
        .then(|| format!("+{international}"))
}

fn national_to_international(digits: &str, code: &str, country: &str) -> Option<String> {
    if code == "1" {
        // NANP: ten digits, or eleven with the leading 1.
        return match digits.len() {
            10 => Some(format!("1{digits}")),
            11 if digits.starts_with('1') => Some(digits.to_string()),
            _ => None,
        };
    }
    let keeps_zero = KEEPS_LEADING_ZERO
        .iter()
        .any(|c| c.eq_ignore_ascii_case(country));
    if !keeps_zero && let Some(national) = digits.strip_prefix('0') {
        return Some(format!("{code}{national}"));
    }
    // Already international but without "+": the code followed by a full national number.
    if digits.starts_with(code) && digits.len() >= code.len() + 9 {
        return Some(digits.to_string());
    }
    Some(format!("{code}{digits}"))
}

#[cfg(test)]
mod tests {
    use super::e164;

    #[test]
    fn normalises_the_shapes_call_centers_send() {
        let cases = [
            ("(555) 123-4567", "US", Some("+15551234567")),
            ("1-555-123-4567", "US", Some("+15551234567")),
            ("+1 555 123 4567", "GB", Some("+15551234567")),
            ("07700 900123", "GB", Some("+447700900123")),
            ("447700900123", "gb", Some("+447700900123")),
            ("0044 7700 900123", "US", Some("+447700900123")),
            ("06 1234 5678", "IT", Some("+390612345678")),
            ("555-1234", "US", None),
            ("", "US", None),
            ("5551234567", "ZZ", None),
        ];
        for (input, country, expected) in cases {
            assert_eq!(
                e164(input, country).as_deref(),
                expected,
                "{input} in {country}"
            );
        }
    }
}
