//! The code lists of docs/delivery.md and docs/api.md#answer. Each code is stored in the index as its one-byte number.

use super::text;

/// Declares a code list: an enum with its byte code, the text code snapshots use, and a label.
macro_rules! code_list {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $code:expr, $text:expr, $label:expr;)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The one-byte code stored in the index.
            pub fn code(self) -> u8 {
                match self { $($name::$variant => $code),+ }
            }

            pub fn from_code(code: u8) -> Option<$name> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }

            /// The code as snapshots and answers write it.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Human label (Japanese).
            pub fn label(self) -> &'static str {
                match self { $($name::$variant => $label),+ }
            }

            /// Parses the text code after folding full-width input.
            pub fn parse(s: &str) -> Option<$name> {
                let f = text::fold(s);
                match f.as_ref() { $($text => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

code_list!(
    /// 性別.
    Sex {
        Male = 1, "1", "男";
        Female = 2, "2", "女";
        Unspecified = 3, "3", "未設定";
    }
);

code_list!(
    /// 本人・家族.
    Relationship {
        Insured = 1, "1", "本人";
        Dependant = 2, "2", "家族";
    }
);

code_list!(
    /// 資格喪失事由.
    ReasonOfLoss {
        Death = 1, "01", "死亡";
        Welfare = 2, "02", "生活保護";
        OtherInsurance = 3, "03", "他保険取得";
        Other = 99, "99", "その他";
    }
);

code_list!(
    /// 限度額適用区分: A codes under 70, B codes 70 and over.
    LimitCategory {
        A01 = 1, "A01", "ア";
        A02 = 2, "A02", "イ";
        A03 = 3, "A03", "ウ";
        A04 = 4, "A04", "エ";
        A05 = 5, "A05", "オ";
        A06 = 6, "A06", "オ（境）";
        B01 = 11, "B01", "現役並みⅢ";
        B02 = 12, "B02", "現役並みⅡ";
        B03 = 13, "B03", "現役並みⅠ";
        B04 = 14, "B04", "一般";
        B05 = 15, "B05", "低所得Ⅱ";
        B06 = 16, "B06", "低所得Ⅰ";
        B07 = 17, "B07", "低所得Ⅰ（老福）";
        B08 = 18, "B08", "低所得Ⅰ（境）";
        B09 = 19, "B09", "一般Ⅱ";
        B10 = 20, "B10", "一般Ⅰ";
    }
);

impl LimitCategory {
    /// A codes apply under 70, B codes from 70.
    pub fn for_seventy_and_over(self) -> bool {
        self.code() > 10
    }
}

code_list!(
    /// Insurer kind column of `insurers.csv`.
    InsurerKind {
        Kyokai = 1, "kyokai", "協会けんぽ";
        Senin = 2, "senin", "船員保険";
        Kumiai = 3, "kumiai", "組合健保";
        Kyosai = 4, "kyosai", "共済組合";
        Kokuho = 5, "kokuho", "市町村国保";
        KokuhoKumiai = 6, "kokuho_kumiai", "国保組合";
        Koki = 7, "koki", "後期高齢者医療";
    }
);

code_list!(
    /// 照会結果 (docs/api.md#answer).
    Validity {
        Eligible = 1, "eligible", "有効";
        Invalid = 2, "invalid", "無効";
        InvalidNewerQualification = 3, "invalid_newer_qualification", "無効・新しい資格あり";
        NotFound = 4, "not_found", "該当資格なし";
        Multiple = 5, "multiple", "複数該当";
    }
);

/// 一部負担金割合 in percent: 10, 20 or 30.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CopayRatio(u8);

impl CopayRatio {
    pub const ALL: [CopayRatio; 3] = [CopayRatio(10), CopayRatio(20), CopayRatio(30)];

    pub fn new(percent: u8) -> Option<CopayRatio> {
        matches!(percent, 10 | 20 | 30).then_some(CopayRatio(percent))
    }

    /// Accepts `10`/`20`/`30` and `1割`/`2割`/`3割`.
    pub fn parse(s: &str) -> Option<CopayRatio> {
        let f = text::fold(s);
        match f.as_ref() {
            "10" | "1割" => Some(CopayRatio(10)),
            "20" | "2割" => Some(CopayRatio(20)),
            "30" | "3割" => Some(CopayRatio(30)),
            _ => None,
        }
    }

    pub fn percent(self) -> u8 {
        self.0
    }

    /// W2: the ratios usual for an age on the snapshot date.
    pub fn usual_for_age(self, age: i32) -> bool {
        match age {
            i32::MIN..=5 => self.0 == 20,
            6..=69 => self.0 == 30,
            70..=74 => self.0 == 20 || self.0 == 30,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for &v in LimitCategory::ALL {
            assert_eq!(LimitCategory::from_code(v.code()), Some(v));
            assert_eq!(LimitCategory::parse(v.as_str()), Some(v));
        }
        for &v in Validity::ALL {
            assert_eq!(Validity::from_code(v.code()), Some(v));
        }
        assert_eq!(
            ReasonOfLoss::parse("03"),
            Some(ReasonOfLoss::OtherInsurance)
        );
        assert_eq!(ReasonOfLoss::parse("3"), None);
        assert_eq!(Sex::parse("２"), Some(Sex::Female));
        assert_eq!(Sex::parse("4"), None);
        assert_eq!(
            InsurerKind::parse("kokuho_kumiai"),
            Some(InsurerKind::KokuhoKumiai)
        );
        assert_eq!(
            Validity::InvalidNewerQualification.as_str(),
            "invalid_newer_qualification"
        );
    }

    #[test]
    fn copay() {
        assert_eq!(CopayRatio::parse("3割"), CopayRatio::new(30));
        assert_eq!(CopayRatio::parse("３割"), CopayRatio::new(30));
        assert_eq!(CopayRatio::parse("20"), CopayRatio::new(20));
        assert_eq!(CopayRatio::parse("40"), None);
        let r = |p| CopayRatio::new(p).unwrap();
        assert!(r(20).usual_for_age(3));
        assert!(!r(30).usual_for_age(3));
        assert!(r(30).usual_for_age(40));
        assert!(!r(10).usual_for_age(72));
        assert!(r(10).usual_for_age(80));
    }
}
