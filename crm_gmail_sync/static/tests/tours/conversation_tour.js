/** @odoo-module **/
/*
 * Real-browser checks of conversations, run by crm_gmail_sync/tests/test_conversation_ui.py.
 *
 * The owner's tour opens the Emails tab, a conversation of two emails (an inline image, a PDF
 * attachment), checks that the image is served and loads, downloads the attachment, and
 * follows the link to the deal. The colleague's tour sees the owner's shared conversation
 * with "Shared by", and never a third user's private one (checked in the same rendering as
 * the shared one, so it cannot pass on a page that has not loaded).
 */
import { registry } from "@web/core/registry";
import { stepUtils } from "@web_tour/tour_service/tour_utils";

const SHARED = "Tour: contract and logo";
const PRIVATE = "Tour: private pricing";
const DEAL = "Deal with Acme";

function openEmailsTab() {
    return [
        stepUtils.showAppsMenuItem(),
        {
            content: "open the CRM app",
            trigger: ".o_app[data-menu-xmlid='crm.crm_menu_root']",
            run: "click",
        },
        {
            content: "open the Emails top menu",
            trigger: ".o_menu_sections button[data-menu-xmlid='crm_gmail_sync.crm_gmail_message_menu_root']",
            run: "click",
        },
        {
            content: "open the conversations",
            trigger: ".dropdown-item[data-menu-xmlid='crm_gmail_sync.crm_gmail_message_menu']",
            run: "click",
        },
    ];
}

registry.category("web_tour.tours").add("crm_gmail_sync_conversation_owner", {
    steps: () => [
        ...openEmailsTab(),
        {
            content: "the conversation is one row: two emails, an attachment",
            trigger: `.o_list_view .o_data_row:has(td[name='subject']:contains('${SHARED}')):has(td[name='message_count']:contains('2'))`,
        },
        {
            content: "the private conversation of another user is not listed",
            trigger: `.o_list_view .o_list_table:has(td[name='subject']:contains('${SHARED}')):not(:has(td[name='subject']:contains('${PRIVATE}')))`,
        },
        {
            content: "open the conversation",
            trigger: `.o_list_view .o_data_row td[name='subject']:contains('${SHARED}')`,
            run: "click",
        },
        {
            content: "its two emails are cards, in order",
            trigger: ".o_form_view .o_gmail_card:has(.o_gmail_body:contains('Here is our logo')) + .o_gmail_card:has(.o_gmail_body:contains('signed contract'))",
        },
        {
            content: "the inline image is served and loads",
            trigger: ".o_gmail_card .o_gmail_body img[src^='/web/image/']",
            async run() {
                const img = document.querySelector(".o_gmail_card .o_gmail_body img[src^='/web/image/']");
                if (!img.complete) {
                    await new Promise((resolve) => {
                        img.onload = img.onerror = resolve;
                    });
                }
                if (!img.naturalWidth) {
                    throw new Error(`the inline image did not load: ${img.src}`);
                }
            },
        },
        {
            content: "the attachment is under the body, with its full name, and downloads",
            trigger: ".o_gmail_attachment:has(.o_gmail_attachment_name:contains('Contract 2026 (signed).pdf')) .o_gmail_attachment_download",
            async run() {
                const link = document.querySelector(".o_gmail_attachment .o_gmail_attachment_download");
                const response = await fetch(link.href);
                const text = await response.text();
                if (!response.ok || !text.startsWith("%PDF")) {
                    throw new Error(`download failed: ${response.status}`);
                }
            },
        },
        {
            // the HTML field opens its links in a new tab: follow it in this one
            content: "follow the link to the deal",
            trigger: `.o_gmail_links a.o_gmail_link:contains('${DEAL}')`,
            run() {
                const link = [...document.querySelectorAll(".o_gmail_links a.o_gmail_link")].find(
                    (a) => a.textContent.includes(DEAL)
                );
                window.location.assign(link.getAttribute("href"));
            },
        },
        {
            content: "the deal's form is open",
            trigger: `.o_form_view .o_breadcrumb .active:contains('${DEAL}')`,
        },
        {
            content: "open its Emails page",
            trigger: ".o_form_view .o_notebook .nav-link[name='gmail_emails']",
            run: "click",
        },
        {
            content: "the Emails page lists the conversation",
            trigger: `.o_notebook .tab-pane.active .o_field_widget[name='gmail_conversation_ids'] .o_data_row td[name='subject']:contains('${SHARED}')`,
        },
    ],
});

registry.category("web_tour.tours").add("crm_gmail_sync_conversation_colleague", {
    steps: () => [
        ...openEmailsTab(),
        {
            content: "the shared conversation is listed, the private one is not",
            trigger: `.o_list_view .o_list_table:has(td[name='subject']:contains('${SHARED}')):not(:has(td[name='subject']:contains('${PRIVATE}')))`,
        },
        {
            content: "open the shared conversation",
            trigger: `.o_list_view .o_data_row td[name='subject']:contains('${SHARED}')`,
            run: "click",
        },
        {
            content: "it says whose it is",
            trigger: ".o_form_view .o_gmail_shared_by:contains('Olivia Owner')",
        },
        {
            content: "its cards are shown",
            trigger: ".o_form_view .o_gmail_card .o_gmail_body:contains('Here is our logo')",
        },
    ],
});
