//! NHS numbers: ten digits, the last a Modulus 11 check digit. A number
//! typed wrong is refused at once, in words that say what to do, rather
//! than filed against the wrong person or nobody.

/// A valid NHS number, ten digits without spaces. Its `Debug` hides the
/// digits, so it cannot reach a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct NhsNumber(String);

/// Why a typed NHS number was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NhsNumberError {
    /// Not ten digits (spaces and hyphens aside).
    #[error("an NHS number has 10 digits; check it and type it again")]
    WrongLength,
    /// Something other than digits, spaces and hyphens.
    #[error("an NHS number has only digits; check it and type it again")]
    NotDigits,
    /// The last digit does not match the other nine: a digit is wrong or two
    /// are swapped.
    #[error("this is not a valid NHS number (its check digit does not match); check each digit and type it again")]
    CheckDigit,
}

impl NhsNumber {
    /// Reads a number as typed (`943 476 5919`, `943-476-5919` or
    /// `9434765919`) and checks its check digit.
    pub fn parse(typed: &str) -> Result<NhsNumber, NhsNumberError> {
        let digits: String = typed
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(NhsNumberError::NotDigits);
        }
        if digits.len() != 10 {
            return Err(NhsNumberError::WrongLength);
        }
        let d: Vec<u32> = digits.bytes().map(|b| u32::from(b - b'0')).collect();
        // Weights 10 down to 2 on the first nine digits; the check digit is
        // 11 minus the remainder mod 11, 11 meaning 0 and 10 never valid.
        let sum: u32 = d[..9].iter().zip((2..=10).rev()).map(|(x, w)| x * w).sum();
        let check = match 11 - sum % 11 {
            11 => 0,
            10 => return Err(NhsNumberError::CheckDigit),
            c => c,
        };
        if check != d[9] {
            return Err(NhsNumberError::CheckDigit);
        }
        Ok(NhsNumber(digits))
    }

    /// The ten digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for NhsNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NhsNumber(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_number_is_read_however_it_is_spaced() {
        for typed in ["9434765919", "943 476 5919", "943-476-5919", " 9434765919 "] {
            assert_eq!(NhsNumber::parse(typed).unwrap().as_str(), "9434765919");
        }
        assert_eq!(
            NhsNumber::parse("4010232137").unwrap().as_str(),
            "4010232137"
        );
        // A remainder of 0 makes the check digit 0 (11 would be).
        assert_eq!(
            NhsNumber::parse("1000000060").unwrap().as_str(),
            "1000000060"
        );
    }

    #[test]
    fn a_wrong_digit_a_swap_or_a_wrong_length_is_refused() {
        assert_eq!(
            NhsNumber::parse("9434765918"),
            Err(NhsNumberError::CheckDigit)
        );
        assert_eq!(
            NhsNumber::parse("9434765991"),
            Err(NhsNumberError::CheckDigit)
        );
        assert_eq!(
            NhsNumber::parse("4434765919"),
            Err(NhsNumberError::CheckDigit)
        );
        assert_eq!(
            NhsNumber::parse("943476591"),
            Err(NhsNumberError::WrongLength)
        );
        assert_eq!(
            NhsNumber::parse("94347659190"),
            Err(NhsNumberError::WrongLength)
        );
        assert_eq!(
            NhsNumber::parse("94347659l9"),
            Err(NhsNumberError::NotDigits)
        );
        assert_eq!(NhsNumber::parse(""), Err(NhsNumberError::WrongLength));
    }

    #[test]
    fn a_check_digit_of_ten_is_never_valid() {
        // 100000001 weighs 1x10 + 1x2 = 12, remainder 1: its check digit
        // would be 10, so no tenth digit makes it valid.
        for last in 0..10 {
            let n = format!("100000001{last}");
            assert_eq!(NhsNumber::parse(&n), Err(NhsNumberError::CheckDigit), "{n}");
        }
    }

    #[test]
    fn debug_hides_the_digits() {
        let n = NhsNumber::parse("9434765919").unwrap();
        assert!(!format!("{n:?}").contains("943"));
    }
}
