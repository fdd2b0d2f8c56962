/** @odoo-module **/
/*
 * Real-browser checks of sending, run by crm_gmail_sync/tests/test_composer_ui.py.
 *
 * The owner composes from a deal's Emails page (To is the deal's address) and sends; the
 * email shows at once in its conversation as queued, with Undo. Then, from a conversation
 * with a customer, Reply all: To and Cc are the original's, without the user's own address;
 * the reply shows queued in the same conversation.
 */
import { registry } from "@web/core/registry";

registry.category("web_tour.tours").add("crm_gmail_sync_compose_from_deal", {
    steps: () => [
        {
            content: "open the deal's Emails page",
            trigger: ".o_form_view .o_notebook_headers a[name='gmail_emails']",
            run: "click",
        },
        {
            content: "Send email",
            trigger: ".o_form_view button[name='action_gmail_compose']",
            run: "click",
        },
        {
            content: "To is the deal's address",
            trigger: ".modal .o_field_widget[name='email_to'] input",
            run() {
                const value = document.querySelector(".modal .o_field_widget[name='email_to'] input").value;
                if (value !== "buyer@acme.test") {
                    throw new Error(`To is ${value}, not the deal's address`);
                }
            },
        },
        {
            content: "a subject",
            trigger: ".modal .o_field_widget[name='subject'] input",
            run: "edit Tour: our offer",
        },
        {
            content: "send",
            trigger: ".modal button[name='action_send']",
            run: "click",
        },
        {
            content: "the conversation shows the email queued, with Undo",
            trigger: ".o_form_view .o_field_widget[name='outbox_ids'] .o_data_row:has(td:contains('Tour: our offer')):has(button[name='action_gmail_undo'])",
        },
        {
            content: "and its card",
            trigger: ".o_form_view .o_gmail_card",
        },
    ],
});

registry.category("web_tour.tours").add("crm_gmail_sync_reply_all", {
    steps: () => [
        {
            content: "Reply all",
            trigger: ".o_form_view button[name='action_gmail_reply_all']",
            run: "click",
        },
        {
            content: "To keeps the sender and the other recipient, never me",
            trigger: ".modal .o_field_widget[name='email_cc'] input",
            run() {
                const to = document.querySelector(".modal .o_field_widget[name='email_to'] input").value;
                const cc = document.querySelector(".modal .o_field_widget[name='email_cc'] input").value;
                if (!to.includes("chris@acme.test") || !to.includes("lea@acme.test")) {
                    throw new Error(`To is ${to}`);
                }
                if (!cc.includes("dana@other.test")) {
                    throw new Error(`Cc is ${cc}`);
                }
                if ((to + cc).includes("olivia@ourco.test")) {
                    throw new Error("reply-all kept my own address");
                }
            },
        },
        {
            content: "one Re:",
            trigger: ".modal .o_field_widget[name='subject'] input",
            run() {
                const subject = document.querySelector(".modal .o_field_widget[name='subject'] input").value;
                if (subject !== "Re: Tour: delivery") {
                    throw new Error(`subject ${subject}`);
                }
            },
        },
        {
            content: "send",
            trigger: ".modal button[name='action_send']",
            run: "click",
        },
        {
            content: "the reply is queued in the same conversation",
            trigger: ".o_form_view:has(.o_gmail_card) .o_field_widget[name='outbox_ids'] .o_data_row:has(td:contains('Re: Tour: delivery'))",
        },
    ],
});
