package alert

import (
	"log/slog"
	"strings"
	"time"

	"github.com/portcullis-mail/portcullis/config"
)

// Channels builds the configured channels, in order.
func Channels(c config.Alerts) []Channel {
	var out []Channel
	for _, ch := range c.Channels {
		switch ch.Type {
		case "sendmail":
			out = append(out, &Sendmail{ChannelName: ch.Name, Command: strings.Fields(ch.Command), From: c.From, To: c.To})
		case "smtp":
			out = append(out, &SMTP{ChannelName: ch.Name, Address: ch.Address, StartTLS: ch.StartTLS, CAFile: ch.CAFile, From: c.From, To: c.To})
		case "webhook":
			out = append(out, &Webhook{ChannelName: ch.Name, URL: ch.URL, Format: ch.Format})
		}
	}
	return out
}

// SenderFor makes a Sender for the configured channels.
func SenderFor(c config.Alerts, log *slog.Logger, statePath string) *Sender {
	return NewSender(Options{Channels: Channels(c), Logger: log, Cooldown: time.Duration(c.Cooldown), StatePath: statePath})
}

// ThresholdsFor reads the attack thresholds from the configuration.
func ThresholdsFor(c config.AttackAlerts) Thresholds {
	return Thresholds{
		FailuresPerMinute:   c.FailuresPerMinute,
		BaselineFactor:      c.BaselineFactor,
		MinFailures:         c.MinFailures,
		SYNsPerMinute:       uint64(max(c.SYNsPerMinute, 0)),
		SourceSYNsPerMinute: uint64(max(c.SourceSYNsPerMinute, 0)),
		BanStorm:            c.BanStorm,
		BanStormWithin:      time.Duration(c.BanStormWithin),
		PrefixSources:       c.PrefixSources,
		CountrySources:      c.CountrySources,
	}
}
