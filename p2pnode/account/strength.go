package account

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode"
)

// MinPasswordBits is the strength a password needs, as estimated by
// PasswordStrength. The login record is public, so an attacker can try
// passwords offline against it as fast as Argon2id allows; the password is
// the only defence.
const MinPasswordBits = 50

// MinPasswordLength is the shortest password accepted, whatever its mix.
const MinPasswordLength = 10

// ErrWeakPassword is matched by every *WeakPasswordError.
var ErrWeakPassword = errors.New("account: password too weak")

// WeakPasswordError says why a password was refused.
type WeakPasswordError struct {
	Reason string
	Bits   float64
}

func (e *WeakPasswordError) Error() string {
	return fmt.Sprintf("password refused: %s. Your encrypted keys are stored publicly in the network, "+
		"so anyone can guess passwords against them offline: use at least %d characters, ideally a "+
		"phrase of four or more unrelated words", e.Reason, MinPasswordLength)
}

// Is makes errors.Is(err, ErrWeakPassword) true.
func (e *WeakPasswordError) Is(target error) bool { return target == ErrWeakPassword }

// commonWords are passwords and base words at the top of every leaked list;
// a password built mostly from one of them is refused.
var commonWords = strings.Fields(`password passw0rd p@ssword passwort motdepasse contraseña
123456 1234567 12345678 123456789 1234567890 0123456789 987654321 654321 111111 000000
qwerty qwertz azerty asdfgh zxcvbn qazwsx 1q2w3e4r iloveyou letmein welcome admin
administrator root login master monkey dragon football baseball soccer hockey shadow
sunshine princess trustno1 superman batman starwars pokemon whatever freedom secret
changeme default jellyfish rclone abc123 abcdef abcdefgh qwertyuiop michael jennifer
hunter charlie donald summer winter autumn spring computer internet samsung google`)

// PasswordStrength estimates a password's strength in bits: its effective
// length (repeats and runs like "aaaa" or "1234" count a quarter) times the
// log2 of the character classes it draws from. It is deliberately simple
// and conservative; CheckPassword adds the dictionary and username checks.
func PasswordStrength(password string) float64 {
	var lower, upper, digit, symbol, other bool
	var eff float64
	var prev rune = -1
	for _, r := range password {
		switch {
		case r >= 'a' && r <= 'z':
			lower = true
		case r >= 'A' && r <= 'Z':
			upper = true
		case r >= '0' && r <= '9':
			digit = true
		case r < 128:
			symbol = true
		default:
			other = true
		}
		d := r - prev
		if prev >= 0 && (d == 0 || d == 1 || d == -1) {
			eff += 0.25
		} else {
			eff++
		}
		prev = r
	}
	var charset float64
	for _, c := range []struct {
		on bool
		n  float64
	}{{lower, 26}, {upper, 26}, {digit, 10}, {symbol, 33}, {other, 100}} {
		if c.on {
			charset += c.n
		}
	}
	if charset == 0 {
		return 0
	}
	return eff * math.Log2(charset)
}

// CheckPassword refuses passwords too weak to protect a public key blob,
// with a *WeakPasswordError that says why.
func CheckPassword(user Username, password string) error {
	n := len([]rune(password))
	if n < MinPasswordLength {
		return &WeakPasswordError{Reason: fmt.Sprintf("it has %d characters", n)}
	}
	lowerPw := strings.ToLower(password)
	if u := strings.ToLower(string(user)); len(u) >= 3 && strings.Contains(lowerPw, u) {
		return &WeakPasswordError{Reason: "it contains the username"}
	}
	letters := strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return r
		}
		return -1
	}, lowerPw)
	for _, w := range commonWords {
		if strings.Contains(lowerPw, w) && 2*len(w) >= len(lowerPw) || letters == w {
			return &WeakPasswordError{Reason: fmt.Sprintf("it is built around %q, one of the most guessed passwords", w)}
		}
	}
	if bits := PasswordStrength(password); bits < MinPasswordBits {
		return &WeakPasswordError{Reason: fmt.Sprintf("it is too predictable (about %.0f bits of guessing work, %d needed)", bits, MinPasswordBits), Bits: bits}
	}
	return nil
}
